import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileExcludes } from '../../src/image/normalize.js';
import { readTarInput } from '../../src/image/tar/input.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { setAllMtimes } from './helpers.js';

/** The names of a tar file's entries, as GNU tar lists them. */
function listTar(file: string): string[] {
  const r = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('--exclude drops an excluded directory with everything below it from a tar input too: the same layer as from the directory', async (t) => {
  if (!requireTools(t, 'tar')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'cache', 'sub'), { recursive: true });
  await mkdir(join(tree, 'keep', 'sub'), { recursive: true });
  await writeFile(join(tree, 'cache', 'x'), 'x\n');
  await writeFile(join(tree, 'cache', 'sub', 'y'), 'y\n');
  await writeFile(join(tree, 'keep', 'y'), 'y\n');
  await writeFile(join(tree, 'keep', 'sub', 'z'), 'z\n');
  // Matches no pattern although its name starts like an excluded directory's.
  await writeFile(join(tree, 'keep', 'subway'), 'w\n');
  await setAllMtimes(tree, 1_700_000_000);
  const tarFile = join(dir, 'in.tar');
  const made = spawnSync('tar', ['--sort=name', '-C', tree, '-cf', tarFile, '.'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);

  const excludes = ['--exclude', '^cache$', '--exclude', '^keep/sub$'];
  const built = await Promise.all(
    ['tree', 'in.tar'].map((input, i) =>
      runCli([
        'image',
        'build',
        '--layer',
        join(dir, input),
        ...excludes,
        '--layer-compression',
        'none',
        '--output',
        `oci:${join(dir, `img${i}`)}:v1`,
        '--json',
      ]),
    ),
  );
  for (const b of built) assert.equal(b.code, 0, b.stderr);
  const [fromTree, fromTar] = built.map((b) => JSON.parse(b.stdout).layers[0]);
  assert.deepEqual(listTar(join(dir, 'img1', 'blobs', 'sha256', fromTar.digest.slice(7))), ['keep/', 'keep/subway', 'keep/y']);
  assert.equal(fromTar.diffID, fromTree.diffID);

  // A tar need not hold an entry for each directory: the parents of an entry are tested by name.
  const bare = join(dir, 'bare.tar');
  const r = spawnSync('tar', ['-C', tree, '-cf', bare, 'cache/sub/y', 'keep/sub/z', 'keep/y'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const names: string[] = [];
  for await (const e of readTarInput(bare, { exclude: compileExcludes(['^cache$', '^keep/sub$']) })) names.push(e.entry.name);
  assert.deepEqual(names, ['keep/y']);
});
