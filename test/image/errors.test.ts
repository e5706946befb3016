import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, tempDir } from '../helpers/cli.js';

const exists = (p: string) => access(p).then(() => true, () => false);

test('mistakes get one clear line and the usage (2) or runtime (1, 5) exit code; nothing is left at the destination', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  await writeFile(join(tree, 'f'), 'x');
  await writeFile(join(dir, 'not-a-tar'), 'this is plain text, not a tar archive');
  const out = `oci:${join(dir, 'out')}`;
  const cases: Array<[string[], number, RegExp]> = [
    [['--rootfs', join(dir, 'missing'), '-o', out], 1, /cannot read .*missing: no such file or directory/],
    [['--rootfs', tree, '--env', 'NOEQUALS', '-o', out], 2, /invalid --env "NOEQUALS": use KEY=VALUE/],
    [['--rootfs', tree, '--label', '=v', '-o', out], 2, /invalid --label "=v": use KEY=VALUE/],
    [['--rootfs', tree, '--annotation', 'x', '-o', out], 2, /invalid --annotation "x": use KEY=VALUE/],
    [['--rootfs', tree, '--platform', 'linux/amd65', '-o', out], 2, /unknown platform architecture "amd65"/],
    [['--rootfs', tree, '--platform', 'plan10/amd64', '-o', out], 2, /unknown platform OS "plan10"/],
    [['--rootfs', tree, '--platform', 'linux', '-o', out], 2, /invalid platform "linux": use OS\/ARCH\[\/VARIANT\]/],
    [['--rootfs', tree, '--cmd', '[1, 2]', '-o', out], 2, /invalid --cmd \[1, 2\]: a JSON array of strings is needed/],
    [['--rootfs', tree, '--expose', 'http', '-o', out], 2, /invalid --expose "http"/],
    [['--rootfs', tree, '--owner', 'root', '-o', out], 2, /invalid owner "root": use numeric UID:GID/],
    [['--rootfs', tree, '--source-date-epoch', 'yesterday', '-o', out], 2, /invalid --source-date-epoch "yesterday"/],
    [['--rootfs', tree, '--exclude', '(', '-o', out], 2, /invalid --exclude pattern "\("/],
    [['--rootfs', tree], 2, /output|push/],
    [['--rootfs', tree, '-o', out, '--push', '127.0.0.1:1/x:y'], 2, /output|push/],
    [['-o', out], 2, /nothing to build/],
    [['--rootfs', tree, '--push', '127.0.0.1:1/x@sha256:' + 'a'.repeat(64)], 2, /push to a tag/],
    [['--layer', tree, '--layer', join(dir, 'not-a-tar'), '-o', out], 5, /not-a-tar is not a readable tar archive/],
  ];
  for (const [args, code, message] of cases) {
    const r = await runCli(['image', 'build', ...args]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
  assert.equal(await exists(join(dir, 'out', 'index.json')), false, 'no image became visible');
  assert.deepEqual(await readdir(join(dir, 'out', 'blobs', 'sha256')), [], 'the failed build left no blobs');

  const env = await runCli(['image', 'build', '--rootfs', tree, '-o', out], { env: { SOURCE_DATE_EPOCH: 'soon' } });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /invalid SOURCE_DATE_EPOCH "soon"/);
  const unpack = await runCli(['image', 'unpack', `oci:${join(dir, 'nowhere')}`, join(dir, 'u')]);
  assert.equal(unpack.code, 1, unpack.stderr);
  assert.match(unpack.stderr, /nowhere/);
  const index = await runCli(['image', 'index', '-o', out]);
  assert.equal(index.code, 2);
  const unknown = await runCli(['image', 'frobnicate']);
  assert.equal(unknown.code, 2);
});
