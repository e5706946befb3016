import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { blobPath, buildImage, KiB, runCliBinary } from './image-helpers.js';

test('extract writes verified payloads to a file and to stdout', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 700 * KiB + 17, frame: '256KiB' });
  const out = join(root, 'out', 'system.img');
  await mkdir(join(root, 'out'));
  const r = await runCli(['extract', img.location, '--payload', 'system', '--output', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { source: img.location, digest: img.digest, payload: 'system', size: 700 * KiB + 17, chunks: 11, output: out });
  assert.ok((await readFile(out)).equals(img.data.system!));
  assert.deepEqual(await readdir(join(root, 'out')), ['system.img'], 'no temporary file left');

  const s = await runCliBinary(['extract', img.location, '-p', 'kernel.efi', '-o', '-']);
  assert.equal(s.code, 0, s.stderr);
  assert.ok(s.stdout.equals(img.data['kernel.efi']!), 'stdout carries exactly the payload');

  const missing = await runCli(['extract', img.location, '-p', 'initrd', '-o', join(root, 'x')]);
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /no payload "initrd" in the image \(payloads: system, kernel\.efi\)/);
});

test('extract removes its partial file on failure and leaves an existing target untouched', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { compression: 'none', size: 8 * 64 * KiB });
  const system = img.payloads.find((p) => p.name === 'system')!;
  const bytes = await readFile(blobPath(img.dir, system.digest));
  bytes[6 * 64 * KiB]! ^= 0x80; // chunk 6: chunks 0-5 are written before the failure
  await writeFile(blobPath(img.dir, system.digest), bytes);
  const outDir = join(root, 'out');
  await mkdir(outDir);

  const fresh = await runCli(['extract', img.location, '-p', 'system', '-o', join(outDir, 'new.img')]);
  assert.equal(fresh.code, 5);
  assert.match(fresh.stderr, /payload "system": chunk 6 at byte offset 393216/);
  assert.deepEqual(await readdir(outDir), [], 'the partial file is gone');

  await writeFile(join(outDir, 'old.img'), 'previous content');
  const over = await runCli(['extract', img.location, '-p', 'system', '-o', join(outDir, 'old.img')]);
  assert.equal(over.code, 5);
  assert.equal(await readFile(join(outDir, 'old.img'), 'utf8'), 'previous content');
  assert.deepEqual(await readdir(outDir), ['old.img']);

  // To stdout, the good chunks before the bad one are all that come out.
  const piped = await runCliBinary(['extract', img.location, '-p', 'system', '-o', '-']);
  assert.equal(piped.code, 5);
  assert.ok(piped.stdout.equals(img.data.system!.subarray(0, 6 * 64 * KiB)));
});

test('extract over an existing file keeps its permissions, and through a symbolic link replaces the file it names', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 300 * KiB });
  const out = join(root, 'out');
  await mkdir(out);
  const file = join(out, 'system.img');
  await writeFile(file, 'old contents', { mode: 0o600 });
  await chmod(file, 0o640);
  const r = await runCli(['extract', img.location, '-p', 'system', '-o', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await readFile(file)).equals(img.data.system!));
  assert.equal((await stat(file)).mode & 0o777, 0o640, 'the mode of the file replaced is kept');

  const link = join(root, 'current.img');
  await symlink(file, link);
  const k = await runCli(['extract', img.location, '-p', 'kernel.efi', '-o', link]);
  assert.equal(k.code, 0, k.stderr);
  assert.ok((await lstat(link)).isSymbolicLink(), 'the link is still a link');
  assert.equal(await readlink(link), file);
  assert.ok((await readFile(file)).equals(img.data['kernel.efi']!), 'the file it names holds the payload');
  assert.equal((await stat(file)).mode & 0o777, 0o640);
  assert.deepEqual((await readdir(out)).sort(), ['system.img'], 'no temporary file left');
});
