import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';

// build and push take --quiet (print only the result); image build, the
// other command that builds, takes it too.

test('image build --quiet prints only the digest; without it, the notes about layers go to stderr', async (t) => {
  const root = await tempDir(t);
  const tree = join(root, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await writeFile(join(tree, 'etc', 'motd'), 'hello\n');
  const base = await runCli(['image', 'build', '--rootfs', tree, '--source-date-epoch', '1700000000', '-o', `oci:${join(root, 'base')}:v1`]);
  assert.equal(base.code, 0, base.stderr);

  // The base already has this layer: image build says so on stderr, unless told to be quiet.
  const args = ['image', 'build', '--base', `oci:${join(root, 'base')}:v1`, '--layer', tree, '--source-date-epoch', '1700000000'];
  const loud = await runCli([...args, '-o', `oci:${join(root, 'loud')}:v1`]);
  assert.equal(loud.code, 0, loud.stderr);
  assert.match(loud.stderr, /the base image already has this layer; not added again/);
  for (const flag of ['--quiet', '-q']) {
    const quiet = await runCli([...args, flag, '-o', `oci:${join(root, `quiet${flag}`)}:v1`]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '', flag);
    assert.equal(quiet.stdout, loud.stdout, `${flag}: the same result: the digest`);
    assert.match(quiet.stdout, /^sha256:[0-9a-f]{64}\n$/);
  }
  const help = await runCli(['image', 'build', '--help']);
  assert.match(help.stdout, /-q, --quiet\s+Print only the result/);
});
