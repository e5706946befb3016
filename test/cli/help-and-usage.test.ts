/**
 * The `image` topic's help (no internal "index" argument), unknown commands
 * and the framework's usage errors reported as one line like every other
 * error (also with --json), and the --json keys the help names.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';

test("image --help lists the topic's commands; image index --help shows only SRC", async () => {
  for (const args of [['image', '--help'], ['image']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\$ oci-os image COMMAND/, args.join(' '));
    for (const c of ['build', 'index', 'unpack']) assert.match(r.stdout, new RegExp(`^  image ${c} `, 'm'), `${args.join(' ')}: ${c}`);
    assert.doesNotMatch(r.stdout, /INDEX|The word/);
  }
  const index = await runCli(['image', 'index', '--help']);
  assert.equal(index.code, 0, index.stderr);
  assert.match(index.stdout, /\$ oci-os image index \(--output DEST \| --push REF\) SRC\.\.\./);
  assert.match(index.stdout, /^ARGUMENTS\n {2}\[SRC\.\.\.\] +Images to combine/m);
  assert.doesNotMatch(index.stdout, /INDEX|The word/);
});

test('image build/index --help name the --json keys that are printed (output, or reference with --push)', async () => {
  for (const cmd of ['build', 'index']) {
    const r = await runCli(['image', cmd, '--help']);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout.replace(/\s+/g, ' ');
    assert.match(text, /--json prints digest, media type, size, output \(or reference with --push\)/, cmd);
    assert.doesNotMatch(text, /destination,/, cmd);
  }
});

test('an unknown command is a usage error (2) in the usual format, on stdout as JSON with --json', async () => {
  const cases: Array<[string[], string]> = [
    [['bogus'], 'unknown command "bogus"; see oci-os --help'],
    [['image', 'frobnicate', 'x'], 'unknown command "image frobnicate"; see oci-os image --help'],
  ];
  for (const [args, message] of cases) {
    const text = await runCli(args);
    assert.equal(text.code, 2, text.stderr);
    assert.equal(text.stdout, '');
    assert.equal(text.stderr, `oci-os: error: ${message}\n`);
    const json = await runCli([...args, '--json']);
    assert.equal(json.code, 2, json.stderr);
    assert.equal(json.stderr, '');
    assert.deepEqual(JSON.parse(json.stdout), { error: { code: 'USAGE', message }, exitCode: 2 });
  }
  // After "--", --json is an argument, not the flag.
  const passed = await runCli(['bogus', '--', '--json']);
  assert.equal(passed.code, 2);
  assert.equal(passed.stdout, '');
  const env = await runCli(['bogus'], { env: { OCI_OS_CONTENT_TYPE: 'json' } });
  assert.equal(JSON.parse(env.stdout).error.code, 'USAGE');
});

test("the framework's usage errors are one line, also in the JSON message", async () => {
  const cases: Array<[string[], string]> = [
    [['inspect'], 'missing argument SOURCE (what to inspect); see --help'],
    [['copy'], 'missing arguments SOURCE (what to copy), DESTINATION (where to copy it); see --help'],
    [['image', 'build', '--rootfs', 'app'], 'give exactly one of --output, --push; see --help'],
    [['image', 'build', '--rootfs', 'app', '-o', 'oci:x', '--push', 'r/x'], 'give only one of --output, --push; see --help'],
    [
      ['image', 'build', '--rootfs', 'app', '-o', 'oci:x', '--layer-compression', 'xz'],
      'invalid --layer-compression "xz": use one of gzip, zstd, none; see --help',
    ],
    [['build', '-p', 'a=b'], 'missing option --output; see --help'],
    [['inspect', '--bogus', 'x'], 'unknown option --bogus; see --help'],
    [['push', 'r/x', '--jobs', 'many'], '--jobs: expected an integer but received: many; see --help'],
  ];
  for (const [args, message] of cases) {
    const text = await runCli(args);
    assert.equal(text.code, 2, `${args.join(' ')}: ${text.stderr}`);
    assert.equal(text.stderr, `oci-os: error: ${message}\n`, args.join(' '));
    const json = await runCli([...args, '--json']);
    assert.equal(json.code, 2, `${args.join(' ')}: ${json.stderr}`);
    assert.deepEqual(JSON.parse(json.stdout), { error: { code: 'USAGE', message }, exitCode: 2 }, args.join(' '));
  }
});
