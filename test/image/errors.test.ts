import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { OciError } from '../../src/errors.js';
import { buildOptionsFromInputs, type ImageBuildInputs } from '../../src/image/inputs.js';
import { cliPath, entriesLeft, runCli, tempDir } from '../helpers/cli.js';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

test('every bad flag value is a one-line usage error (exit code 2) naming the flag', () => {
  const cases: Array<[ImageBuildInputs, RegExp]> = [
    [{ env: ['NOEQUALS'] }, /^invalid --env "NOEQUALS": use KEY=VALUE$/],
    [{ label: ['=v'] }, /^invalid --label "=v": use KEY=VALUE$/],
    [{ annotation: ['x'] }, /^invalid --annotation "x": use KEY=VALUE$/],
    [{ platform: 'linux/amd65' }, /^unknown platform architecture "amd65" in "linux\/amd65": use one of 386, amd64/],
    [{ platform: 'plan10/amd64' }, /^unknown platform OS "plan10"/],
    [{ platform: 'linux' }, /^invalid platform "linux": use OS\/ARCH\[\/VARIANT\]/],
    [{ platform: 'linux/arm/7' }, /^invalid platform variant "7"/],
    [{ cmd: '[1, 2]' }, /^invalid --cmd \[1, 2\]: a JSON array of strings is needed$/],
    [{ entrypoint: '["a", ' }, /^invalid --entrypoint \["a", : it starts with "\[" but is not a JSON array/],
    [{ expose: ['http'] }, /^invalid --expose "http"/],
    [{ expose: ['70000'] }, /^invalid --expose "70000"/],
    [{ volume: ['data'] }, /^invalid --volume "data": use an absolute path/],
    [{ stopSignal: 'sig term' }, /^invalid --stop-signal "sig term"/],
    [{ owner: 'root' }, /^invalid owner "root": use numeric UID:GID/],
    [{ sourceDateEpoch: 'yesterday' }, /^invalid --source-date-epoch "yesterday"/],
    [{ exclude: ['('] }, /^invalid --exclude pattern "\("/],
    [{ layerCompression: 'brotli' }, /^invalid layer compression "brotli"/],
    [{ layerCompression: 'gzip', compressionLevel: 12 }, /^invalid gzip level 12: use 1 to 9$/],
  ];
  for (const [inputs, message] of cases) {
    assert.throws(
      () => buildOptionsFromInputs({ rootfs: '/x', ...inputs }, {}),
      (err: unknown) => {
        assert.ok(err instanceof OciError, String(err));
        assert.equal(err.exitCode, 2, err.message);
        assert.match(err.message, message);
        assert.ok(!err.message.includes('\n'));
        return true;
      },
    );
  }
  assert.throws(() => buildOptionsFromInputs({}, {}), /nothing to build/);
  assert.throws(() => buildOptionsFromInputs({ rootfs: '/x' }, { SOURCE_DATE_EPOCH: 'soon' }), /invalid SOURCE_DATE_EPOCH "soon"/);
  assert.equal(buildOptionsFromInputs({ rootfs: '/x' }, { SOURCE_DATE_EPOCH: '' }).normalize?.sourceDateEpoch, undefined);
  assert.equal(buildOptionsFromInputs({ rootfs: '/x', sourceDateEpoch: '5' }, { SOURCE_DATE_EPOCH: '7' }).normalize?.sourceDateEpoch, 5);
});

test('the CLI: one line on stderr, usage (2), runtime (1) or not found (4) exit codes, nothing left at the destination', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  await writeFile(join(tree, 'f'), 'x');
  await writeFile(join(dir, 'not-a-tar'), 'this is plain text, not a tar archive');
  const out = `oci:${join(dir, 'out')}`;
  const cases: Array<[string[], number, RegExp]> = [
    [['image', 'build', '--rootfs', join(dir, 'missing'), '-o', out], 1, /^oci-os: error: cannot read .*missing: no such file or directory$/],
    [['image', 'build', '--rootfs', tree, '--env', 'NOEQUALS', '-o', out], 2, /invalid --env "NOEQUALS": use KEY=VALUE/],
    [['image', 'build', '--rootfs', tree, '--platform', 'linux/amd65', '-o', out], 2, /unknown platform architecture "amd65"/],
    [['image', 'build', '--rootfs', tree], 2, /output|push/],
    [['image', 'build', '--rootfs', tree, '--push', '127.0.0.1:1/x@sha256:' + 'a'.repeat(64)], 2, /push to a tag/],
    [['image', 'build', '--layer', tree, '--layer', join(dir, 'not-a-tar'), '-o', out], 2, /not-a-tar is not a tar archive \(shorter than one header\)/],
    [['image', 'unpack', `oci:${join(dir, 'nowhere')}`, join(dir, 'u')], 4, /cannot read .*nowhere: no such file or directory/],
    [['image', 'index', '-o', out], 2, /^oci-os: error: image index needs at least one SRC image to combine$/],
    [['image', 'frobnicate'], 2, /./],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim(), message, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
  assert.equal(await exists(join(dir, 'out', 'index.json')), false, 'no image became visible');
  assert.deepEqual(await entriesLeft(join(dir, 'out', 'blobs', 'sha256')), [], 'the failed build left no blobs');
});

test('Ctrl-C during a build: exit code 1, "build aborted", nothing left in the layout', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'tree'));
  const fh = await open(join(dir, 'tree', 'disk.img'), 'w');
  await fh.truncate(8 * 2 ** 30); // sparse; far more than can be compressed before the signal (8 << 30 would be 0 in 32-bit shifts)
  await fh.close();
  const child = spawn(process.execPath, [cliPath, 'image', 'build', '--rootfs', join(dir, 'tree'), '-o', `oci:${join(dir, 'out')}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let exited: string | undefined;
  const closed = new Promise<number | null>((resolve) =>
    child.on('close', (c, sig) => {
      exited = `code ${c}, signal ${sig}`;
      resolve(c);
    }),
  );
  // Signal once the layer is being written (its temporary blob exists).
  for (let i = 0; i < 600 && !exited && !(await exists(join(dir, 'out', '.oci-os-tmp'))); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(exited, undefined, `the build ended before it was interrupted: ${stderr}`);
  child.kill('SIGINT');
  const code = await closed;
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^oci-os: error: build aborted\n$/);
  assert.equal(await exists(join(dir, 'out', 'index.json')), false);
  assert.deepEqual(await entriesLeft(join(dir, 'out', 'blobs', 'sha256')), []);
  assert.equal(await exists(join(dir, 'out', '.oci-os-tmp')), false, 'no temporary blob left');
});
