import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { pythonList } from './helpers.js';

/** A path below `dir` whose last parts are bytes given as latin1 text. */
const bytePath = (dir: string, ...parts: string[]): Buffer => Buffer.concat([Buffer.from(dir), ...parts.map((p) => Buffer.from(`/${p}`, 'latin1'))]);

test('file names that are not UTF-8 go into the layer byte for byte, and GNU tar extracts the same names', async (t) => {
  if (!requireTools(t, 'tar', 'python3')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  const long = `long-\xe9-${'x'.repeat(110)}`;
  await writeFile(bytePath(tree, 'caf\xe9'), 'latin1\n');
  await mkdir(bytePath(tree, 'd\xff'));
  await writeFile(bytePath(tree, 'd\xff', 'inner'), 'inner\n');
  await link(bytePath(tree, 'caf\xe9'), bytePath(tree, 'hard'));
  await symlink(Buffer.from('caf\xe9', 'latin1'), bytePath(tree, 'sym'));
  await writeFile(bytePath(tree, long), 'pax\n');

  const r = await runCli(['image', 'build', '--rootfs', tree, '--layer-compression', 'none', '--output', `oci:${join(dir, 'img')}:v1`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const layer = join(dir, 'img', 'blobs', 'sha256', JSON.parse(r.stdout).layers[0].digest.slice(7));
  // Names and link targets as bytes (latin1 text here), as Python reads them with surrogateescape.
  assert.deepEqual(pythonList(layer), [
    ['caf\xe9', '0', ''],
    ['d\xff', '5', ''],
    ['d\xff/inner', '0', ''],
    ['hard', '1', 'caf\xe9'],
    [long, '0', ''],
    ['sym', '2', 'caf\xe9'],
  ]);

  const out = join(dir, 'out');
  await mkdir(out);
  const x = spawnSync('tar', ['-C', out, '-xf', layer], { encoding: 'utf8' });
  assert.equal(x.status, 0, x.stderr);
  const names = async (p: Buffer | string) => (await readdir(p, { encoding: 'buffer' })).map((n) => n.toString('latin1')).sort();
  assert.deepEqual(await names(out), ['caf\xe9', 'd\xff', 'hard', long, 'sym'].sort());
  assert.deepEqual(await names(bytePath(out, 'd\xff')), ['inner']);
});
