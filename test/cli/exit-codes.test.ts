import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';
import { buildImage, editConfig } from './image-helpers.js';

// README's exit-code table: 2 usage (bad flags, reference, input that is not
// what it should be), 4 not found, 5 verification failed (digest, size,
// chunk hash, an OS image config that fails its checks).

function expectExit(r: CliResult, code: number, message: RegExp, what: string): void {
  assert.equal(r.code, code, `${what}: ${r.stderr}${r.stdout}`);
  const line = r.stderr.trim();
  assert.match(line, message, what);
  assert.equal(line.split('\n').length, 1, `${what}: one line: ${line}`);
}

test('a local source that is not there is not found (4), and the destination is left alone', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['copy', `oci:${join(dir, 'nonexist')}:v1`, `oci:${join(dir, 'cp4')}`], /cannot read .*nonexist: no such file or directory$/],
    [['inspect', `oci:${join(dir, 'nonexist')}`], /cannot read .*nonexist: no such file or directory$/],
    [['verify', `oci-archive:${join(dir, 'nonexist.tar')}`], /cannot read .*nonexist\.tar: no such file or directory$/],
    [['image', 'unpack', `oci:${join(dir, 'nonexist')}`, join(dir, 'zz')], /cannot read .*nonexist: no such file or directory$/],
  ];
  for (const [args, message] of cases) expectExit(await runCli(args), 4, message, args.join(' '));
  const json = await runCli(['image', 'unpack', '--json', `oci:${join(dir, 'nonexist')}`, join(dir, 'zz')]);
  assert.equal(json.code, 4, json.stderr);
  assert.equal(JSON.parse(json.stdout).error.code, 'NOT_FOUND');
  assert.deepEqual(await readdir(dir), [], 'nothing was created');
});

test('an input that is not a tar is invalid input (2), not a verification failure', async (t) => {
  const dir = await tempDir(t);
  const inputs: Array<[string, Buffer]> = [
    ['app.tar.xz', Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), randomBytes(3000)])],
    ['app.tar.bz2', Buffer.concat([Buffer.from('BZh91AY&SY'), randomBytes(3000)])],
    ['random.bin', randomBytes(3000)],
    ['short.bin', randomBytes(100)],
  ];
  for (const [name, bytes] of inputs) {
    await writeFile(join(dir, name), bytes);
    const r = await runCli(['image', 'build', '--layer', join(dir, name), '-o', `oci:${join(dir, 'b2')}`]);
    expectExit(r, 2, new RegExp(`${name.replace(/\./g, '\\.')} is not a tar archive`), `--layer ${name}`);
    const inspect = await runCli(['inspect', `oci-archive:${join(dir, name)}`]);
    expectExit(inspect, 2, new RegExp(`${name.replace(/\./g, '\\.')} is not a readable tar archive`), `inspect oci-archive:${name}`);
  }
  const json = await runCli(['inspect', '--json', `oci-archive:${join(dir, 'random.bin')}`]);
  assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_ARGUMENT');
});

test('a layout whose index.json is not valid is invalid input (2) for reading and writing', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 1000 });
  const bad = join(root, 'bad');
  await cp(img.dir, bad, { recursive: true });
  await writeFile(join(bad, 'index.json'), '{"manifests": [');
  for (const args of [
    ['inspect', `oci:${bad}`],
    ['verify', `oci:${bad}:v1`],
    ['copy', img.location, `oci:${bad}:v2`],
  ]) {
    expectExit(await runCli(args), 2, /index\.json is not valid JSON$/, args.join(' '));
  }
  const json = await runCli(['verify', '--json', `oci:${bad}`]);
  assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_ARGUMENT');
});

test('an OS image config that fails its checks is a verification failure (5), whichever check', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 1000 });
  const edits: Array<[string, (c: any) => void, RegExp]> = [
    [
      'format_version',
      (c) => {
        c.format_version = '2';
      },
      /format_version "2" is not supported/,
    ],
    [
      'chunk count',
      (c) => {
        c.payloads[0].chunk_hashes_sha256.push(c.payloads[0].chunk_hashes_sha256[0]);
      },
      /2 chunk hashes, expected 1/,
    ],
  ];
  for (const [what, edit, message] of edits) {
    const dir = join(root, what.replace(/ /g, '-'));
    await cp(img.dir, dir, { recursive: true });
    await editConfig(dir, img.digest, edit);
    expectExit(await runCli(['verify', `oci:${dir}:v1`]), 5, message, what);
    const json = await runCli(['verify', '--json', `oci:${dir}:v1`]);
    assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_FORMAT', what);
  }
});
