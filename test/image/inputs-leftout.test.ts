import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TarEntry } from '../../src/image/tar/header.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { tarOf } from './helpers.js';

const file = (name: string, body: string): { entry: TarEntry; body: Buffer } => ({
  entry: { name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1 },
  body: Buffer.from(body),
});
const hardLink = (name: string, linkname: string): { entry: TarEntry } => ({
  entry: { name, type: 'link', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1, linkname },
});

/** The names in the one new layer of a `--json` build (uncompressed) at layout `dir`. */
function layerNames(dir: string, stdout: string): string[] {
  const digest: string = JSON.parse(stdout).layers.at(-1).digest;
  const r = spawnSync('tar', ['-tf', join(dir, 'blobs', 'sha256', digest.slice(7))], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('a hard link in a tar input whose target is not in the layer fails the build, naming both', async (t) => {
  const dir = await tempDir(t);
  const build = (tar: string, ...extra: string[]) =>
    runCli(['image', 'build', '--layer', join(dir, tar), '--layer-compression', 'none', ...extra, '-o', `oci:${join(dir, 'img')}`]);

  await writeFile(join(dir, 'missing.tar'), tarOf([hardLink('h', 'missing.txt'), file('x', 'x')]));
  const missing = await build('missing.tar');
  assert.notEqual(missing.code, 0, missing.stdout);
  assert.match(missing.stderr, /hard link "h" to "missing\.txt".*not in the tar before it/);

  // The first name of a hard-linked file excluded: its bytes were streamed past, the other name would be lost.
  await writeFile(join(dir, 'pair.tar'), tarOf([file('bin/app', 'app'), hardLink('bin/app-hardlink', 'bin/app')]));
  const excluded = await build('pair.tar', '--exclude', '^bin/app$');
  assert.notEqual(excluded.code, 0, excluded.stdout);
  assert.match(excluded.stderr, /hard link "bin\/app-hardlink" to "bin\/app".*--exclude.*both names or neither/);
  assert.equal(excluded.stderr.trim().split('\n').length, 1, excluded.stderr);
  assert.equal(excluded.stdout, '');

  // Excluding both names, or the link alone, is fine.
  if (!requireTools(t, 'tar')) return;
  const both = await build('pair.tar', '--exclude', '^bin/app', '--json');
  assert.equal(both.code, 0, both.stderr);
  assert.deepEqual(layerNames(join(dir, 'img'), both.stdout), []);
  const linkOnly = await build('pair.tar', '--exclude', 'hardlink$', '--json');
  assert.equal(linkOnly.code, 0, linkOnly.stderr);
  assert.deepEqual(layerNames(join(dir, 'img'), linkOnly.stdout), ['bin/app']);
});

test('a destination inside a --rootfs or directory --layer is left out of the layer, temporary files included', async (t) => {
  if (!requireTools(t, 'tar')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'sub'), { recursive: true });
  await writeFile(join(tree, 'a'), 'hi\n');
  // Real paths are compared: the tree is named through a symlink, the destination relative to it.
  await symlink('tree', join(dir, 'via'));
  const build = (dest: string, cwd = tree) =>
    runCli(['image', 'build', '--rootfs', join(dir, 'via'), '--layer', '.', '--source-date-epoch', '1', '--layer-compression', 'none', '-o', dest, '--json'], {
      cwd,
    });

  const first = await build('oci:out:v1');
  assert.equal(first.code, 0, first.stderr);
  const again = await build('oci:out:v2');
  assert.equal(again.code, 0, again.stderr);
  const layers = (r: { stdout: string }) => JSON.parse(r.stdout).layers.map((l: { digest: string }) => l.digest);
  assert.deepEqual(layers(again), layers(first));
  assert.deepEqual(layerNames(join(tree, 'out'), first.stdout), ['a', 'sub/']);

  // An archive and the temporary layout and file written beside it; a name that only starts alike stays.
  const other = join(dir, 'other');
  await mkdir(join(other, 'sub'), { recursive: true });
  await writeFile(join(other, 'sub', 'app.tar.keep'), 'k\n');
  const archive = await runCli([
    'image',
    'build',
    '--rootfs',
    other,
    '--layer-compression',
    'none',
    '-o',
    `oci-archive:${join(other, 'sub', 'app.tar')}`,
    '--json',
  ]);
  assert.equal(archive.code, 0, archive.stderr);
  assert.deepEqual((await readdir(join(other, 'sub'))).sort(), ['app.tar', 'app.tar.keep']);
  const unpacked = join(dir, 'unpacked');
  await mkdir(unpacked);
  const r = spawnSync('tar', ['-C', unpacked, '-xf', join(other, 'sub', 'app.tar')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(layerNames(unpacked, archive.stdout), ['sub/', 'sub/app.tar.keep']);
});
