/** `build`, `image build` and `image index --digest-file`: the digest written, the path checked first. */

import assert from 'node:assert/strict';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

test('build, image build and image index --digest-file: the manifest or index digest, the path checked before anything is written', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'system.img'), pseudoRandom(4096));
  await mkdir(join(dir, 'tree'));
  await writeFile(join(dir, 'tree', 'f'), 'x');
  const commands: Array<[string, string[]]> = [
    ['build', ['build', '-p', `system=${join(dir, 'system.img')}`]],
    ['image', ['image', 'build', '--rootfs', join(dir, 'tree')]],
    // An index of the image the line above built.
    ['index', ['image', 'index', `oci:${join(dir, 'image')}`]],
  ];
  for (const [name, args] of commands) {
    for (const file of [join(dir, 'missing', 'digest.txt'), join(dir, 'tree')]) {
      const r = await runCli([...args, '-o', `oci:${join(dir, `bad-${name}`)}`, '--digest-file', file, '--json']);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const err = JSON.parse(r.stdout).error;
      assert.equal(err.code, 'OUTPUT_UNWRITABLE');
      assert.ok(err.message.startsWith(`cannot write ${file}: `), err.message);
      assert.equal(await exists(join(dir, `bad-${name}`)), false, 'nothing was written');
    }
    const file = join(dir, `${name}-digest.txt`);
    const ok = await runCli([...args, '-o', `oci:${join(dir, name)}`, '--digest-file', file, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await readFile(file, 'utf8'), `${JSON.parse(ok.stdout).digest}\n`);
  }
});
