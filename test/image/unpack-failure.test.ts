import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { blobPath } from '../cli/image-helpers.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('a failed image unpack leaves nothing unchecked behind in a new or empty directory, and says so otherwise', async (t) => {
  const root = await tempDir(t);
  const tree = join(root, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await writeFile(join(tree, 'etc', 'a.conf'), 'a\n'.repeat(50_000));
  await writeFile(join(tree, 'z.bin'), Buffer.alloc(300_000, 7));
  const img = join(root, 'img');
  const b = await runCli(['image', 'build', '--rootfs', tree, '--layer-compression', 'none', '-o', `oci:${img}:v1`, '--json']);
  assert.equal(b.code, 0, b.stderr);
  const manifest = JSON.parse(await readFile(blobPath(img, JSON.parse(b.stdout).digest), 'utf8'));
  // One changed byte near the end of the layer: entries before it are written before the digest is known.
  const layer = blobPath(img, manifest.layers[0].digest);
  const bytes = await readFile(layer);
  bytes[bytes.length - 3000]! ^= 0xff;
  await writeFile(layer, bytes);

  const fresh = join(root, 'new', 'dir');
  const r1 = await runCli(['image', 'unpack', `oci:${img}:v1`, fresh]);
  assert.equal(r1.code, 5, r1.stderr);
  await assert.rejects(stat(join(root, 'new')), 'the directories the unpack created are gone');

  const empty = join(root, 'empty');
  await mkdir(empty);
  const r2 = await runCli(['image', 'unpack', `oci:${img}:v1`, empty]);
  assert.equal(r2.code, 5, r2.stderr);
  assert.deepEqual(await readdir(empty), [], 'an empty directory is left empty');

  const used = join(root, 'used');
  await mkdir(used);
  await writeFile(join(used, 'mine'), 'keep');
  const r3 = await runCli(['image', 'unpack', `oci:${img}:v1`, used]);
  assert.equal(r3.code, 5, r3.stderr);
  assert.match(r3.stderr, /hint: .*used holds part of the image, unchecked/);
  assert.equal(await readFile(join(used, 'mine'), 'utf8'), 'keep');

  const file = join(root, 'file');
  await writeFile(file, 'x');
  const r4 = await runCli(['image', 'unpack', `oci:${img}:v1`, file]);
  assert.equal(r4.code, 2, r4.stderr);
  assert.match(r4.stderr, /file is not a directory/);
});
