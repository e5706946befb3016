import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile, link, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { hostPackages, makeDpkgTree } from '../helpers/dpkg-tree.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { assertPlanInvariants, assertUnpacksEqual, buildJson, readLayers } from './layering-helpers.js';

/** Essential packages every Debian machine has, small ones first. */
const PACKAGES = ['hostname', 'debianutils', 'gzip', 'base-files', 'sed', 'grep', 'findutils', 'bash'];

function packagesOrFail(): string[] {
  const host = hostPackages();
  const have = PACKAGES.filter((p) => host.has(p));
  assert.ok(have.length >= 6, `the machine's dpkg database lists ${have.join(', ')}; the test needs six of ${PACKAGES.join(', ')}`);
  return have;
}

test('real dpkg packages: a component each, more than --max-layers, hard links across packages, an xattr override; unpacks to the tree; reproducible; skopeo copies it', async (t) => {
  if (!requireTools(t, 'umoci', 'skopeo', 'getfattr', 'setfattr', 'dpkg')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  const names = packagesOrFail();
  await makeDpkgTree(tree, names);
  // A hard link from a sed path to a gzip file ties the two packages into one layer.
  await rm(join(tree, 'usr/share/doc/sed/copyright'));
  await link(join(tree, 'usr/share/doc/gzip/copyright'), join(tree, 'usr/share/doc/sed/copyright'));
  // The xattr wins over the package database, for the directory and everything below it.
  const x = spawnSync('setfattr', ['-n', 'user.component', '-v', 'bash-docs', join(tree, 'usr/share/doc/bash')]);
  assert.equal(x.status, 0, x.stderr?.toString());

  const layout = join(dir, 'out');
  const args = ['--rootfs', tree, '--layering', 'components', '--max-layers', '4', '--source-date-epoch', '1700000000'];
  const r = await buildJson([...args, '-o', `oci:${layout}:v1`]);
  assert.equal(r.layers.length, 4, 'more components than layers: exactly --max-layers');
  const layers = await readLayers(layout, 'v1');
  assertPlanInvariants(layers);
  const all = layers.flatMap((l) => l.components);
  for (const p of names) assert.ok(all.includes(`deb:${p}`), `deb:${p} is a component`);
  assert.ok(all.includes('bash-docs'));
  const holding = (c: string) => layers.findIndex((l) => l.components.includes(c));
  assert.equal(holding('deb:sed'), holding('deb:gzip'), 'hard-linked packages share a layer');
  const docs = layers[holding('bash-docs')]!;
  assert.ok(
    [...docs.entries.keys()].some((n) => n.startsWith('usr/share/doc/bash/')),
    'the xattr took the docs out of deb:bash',
  );
  assert.ok(![...layers[holding('deb:bash')]!.entries.keys()].some((n) => n.startsWith('usr/share/doc/bash/') && n !== 'usr/share/doc/bash/'));
  // The dpkg database files of a package go with it; the status file is what no package owns.
  assert.ok(layers[holding('deb:sed')]!.entries.has('var/lib/dpkg/info/sed.list'));
  assert.ok(all.includes('dir:var/lib'));

  await assertUnpacksEqual(dir, layout, 'v1', tree);
  const dump = (root: string) => spawnSync('sh', ['-c', 'cd "$0" && getfattr -R -h -d -m "^user\\." .', root], { encoding: 'utf8' }).stdout;
  assert.match(dump(tree), /user.component="bash-docs"/);
  assert.equal(dump(join(dir, 'unpack-v1')), dump(tree), 'xattrs come back');

  const again = await buildJson([...args, '-o', `oci:${join(dir, 'again')}:v1`]);
  assert.equal(again.digest, r.digest, 'same tree and options, same digests');

  await skopeo(['copy', `oci:${layout}:v1`, `oci:${join(dir, 'copied')}:v1`]);
  const copied = await readLayers(join(dir, 'copied'), 'v1');
  assert.deepEqual(
    copied.map((l) => l.digest),
    layers.map((l) => l.digest),
  );

  const shown = await runCli(['inspect', `oci:${layout}:v1`]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /COMPONENTS/);
  assert.match(shown.stdout, /deb:sed/);
});

test('--previous from a layout: an update that changes, adds and removes packages keeps every untouched layer byte for byte', async (t) => {
  if (!requireTools(t, 'dpkg')) return;
  const dir = await tempDir(t);
  const names = packagesOrFail();
  const v1 = names.slice(0, -1);
  const tree = join(dir, 'tree');
  await makeDpkgTree(tree, v1);
  const layout = join(dir, 'out');
  const args = ['--layering', 'components', '--max-layers', '16', '--source-date-epoch', '1700000000', '--layer-compression', 'zstd'];
  const first = await buildJson(['--rootfs', tree, ...args, '-o', `oci:${layout}:v1`]);
  assert.ok(first.layers.length >= v1.length, 'one layer per package when the budget allows');

  // v2: one package changed, the first removed, the last added.
  const tree2 = join(dir, 'tree2');
  await makeDpkgTree(tree2, [...v1.slice(1), names[names.length - 1]!]);
  await appendFile(join(tree2, 'usr/share/doc/gzip/copyright'), 'patched\n');
  const second = await buildJson(['--rootfs', tree2, ...args, '--previous', `oci:${layout}:v1`, '-o', `oci:${layout}:v2`]);
  const before = await readLayers(layout, 'v1');
  const after = await readLayers(layout, 'v2');
  assertPlanInvariants(after);
  const touched = new Set(['deb:gzip', `deb:${v1[0]}`, `deb:${names[names.length - 1]}`, 'dir:var/lib']);
  for (const l of before) {
    const same = after.find((a) => a.digest === l.digest);
    if (l.components.every((c) => c.startsWith('deb:') && !touched.has(c))) assert.ok(same, `untouched layer ${l.components.join(' ')} is kept`);
    else if (l.components.some((c) => touched.has(c))) assert.equal(same, undefined, `layer ${l.components.join(' ')} changed`);
  }
  const kept = second.layers.filter((l) => l.reused);
  assert.ok(kept.length >= before.length - 4, `${kept.length} of ${before.length} layers kept`);
  assert.ok(
    kept.every((l) => l.status === 'exists'),
    'kept layers are already in the layout',
  );
  assert.ok(!after.flatMap((l) => l.components).includes(`deb:${v1[0]}`));
  await assertUnpacksEqual(dir, layout, 'v2', tree2, false);
});

test('--previous with shared layers: a change to one package rewrites only the layer it shares, and every other layer stays byte for byte', async (t) => {
  if (!requireTools(t, 'dpkg')) return;
  const dir = await tempDir(t);
  const names = packagesOrFail();
  const tree = join(dir, 'tree');
  await makeDpkgTree(tree, names);
  const layout = join(dir, 'out');
  // Fewer layers than packages: some packages share a layer.
  const args = ['--layering', 'components', '--max-layers', '4', '--source-date-epoch', '1700000000', '--layer-compression', 'zstd'];
  await buildJson(['--rootfs', tree, ...args, '-o', `oci:${layout}:v1`]);
  const before = await readLayers(layout, 'v1');
  const shared = before.find((l) => l.components.includes('deb:gzip'));
  assert.ok(shared && shared.components.length > 1, `gzip shares a layer: ${before.map((l) => l.components.join(' ')).join(' | ')}`);

  await appendFile(join(tree, 'usr/share/doc/gzip/copyright'), 'patched\n');
  const second = await buildJson(['--rootfs', tree, ...args, '--previous', `oci:${layout}:v1`, '-o', `oci:${layout}:v2`]);
  const after = await readLayers(layout, 'v2');
  assertPlanInvariants(after);
  for (const l of before) {
    const same = after.some((a) => a.digest === l.digest);
    if (l === shared) assert.ok(!same, 'the layer holding the changed package is rewritten');
    else assert.ok(same, `layer ${l.components.join(' ')} is kept byte for byte`);
  }
  assert.equal(after.filter((a) => !before.some((l) => l.digest === a.digest)).length, 1, 'one new layer');
  assert.ok(second.layers.some((l) => l.reused));
  assert.deepEqual(after.flatMap((l) => l.components).sort(), before.flatMap((l) => l.components).sort());
  await assertUnpacksEqual(dir, layout, 'v2', tree, false);
});
