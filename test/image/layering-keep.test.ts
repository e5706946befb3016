import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PreviousLayer } from '../../src/image/layering/annotations.js';
import { assignComponents } from '../../src/image/layering/assign.js';
import { treeDiffId, unchangedLayers } from '../../src/image/layering/keep.js';
import { planLayers } from '../../src/image/layering/plan.js';
import { layerEntries, scanTree } from '../../src/image/layering/tree-scan.js';
import { writeTar } from '../../src/image/tar/writer.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test('a previous layer is kept exactly when its tar, written from the tree now, has its DiffID; a same-size change with the same mtime is caught', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  // Files across the 1 MiB pieces the check hashes in (so its buffers are reused), and a long name (extended header).
  const sizes = [0, 1, 511, 513, 70_000, 3 << 20, (1 << 20) + 5, 3];
  for (const [n, size] of sizes.entries()) {
    await mkdir(join(root, `d${n % 4}`, 'x'.repeat(n * 30)), { recursive: true });
    await writeFile(join(root, `d${n % 4}`, 'x'.repeat(n * 30), `f${n}`), pseudoRandom(size, n + 1));
  }
  const scanned = async () => {
    const tree = await scanTree(root, {}, []);
    return { tree, a: assignComponents(tree, []) };
  };
  const { tree, a } = await scanned();
  const plan = planLayers(tree, a, 8);
  assert.ok(plan.layers.length >= 3, `${plan.layers.length} layers`);

  // The DiffID of each layer as the tar writer writes it, hashed here in one piece.
  const previous: PreviousLayer[] = [];
  for (const l of plan.layers) {
    const h = createHash('sha256');
    for await (const piece of writeTar(layerEntries(tree, l.entries))) h.update(piece);
    const diffID = `sha256:${h.digest('hex')}`;
    assert.equal(await treeDiffId(tree, l.entries), diffID);
    const components = l.components.map((c) => a.components[c]!.name);
    previous.push({ descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffID, size: 0 }, diffID, components });
  }
  const all = await unchangedLayers(tree, a, previous, 2);
  assert.equal(all.length, previous.length, 'an unchanged tree keeps every layer');
  // A component that went is no candidate; a different DiffID is not kept, whatever the components say.
  const went = previous.map((p, n) => (n === 0 ? { ...p, components: [...p.components!, 'dir:no/such'] } : p));
  assert.equal((await unchangedLayers(tree, a, went, 1)).length, previous.length - 1);
  const other = previous.map((p, n) => (n === 1 ? { ...p, diffID: `sha256:${'0'.repeat(64)}` } : p));
  assert.equal((await unchangedLayers(tree, a, other, 1)).length, previous.length - 1);
  // Components listed twice (a base that was layered too): a listing that changed does not hold the
  // unchanged one back, whichever comes first, and each is checked with all its entries.
  const changedCopy = { ...previous[0]!, diffID: `sha256:${'0'.repeat(64)}` };
  for (const twice of [
    [changedCopy, ...previous],
    [...previous, changedCopy],
  ]) {
    const keptTwice = await unchangedLayers(tree, a, twice, 2);
    assert.deepEqual(
      keptTwice.map((k) => k.previous),
      previous,
    );
  }

  // One byte of the big file changes; its size and mtime stay.
  const rel = join('d1', 'x'.repeat(5 * 30), 'f5');
  const big = join(root, rel);
  const before = await stat(big);
  const bytes = pseudoRandom(3 << 20, 6);
  bytes[2_000_000]! ^= 1;
  await writeFile(big, bytes);
  await utimes(big, before.atime, before.mtime);
  const now = await scanned();
  const kept = await unchangedLayers(now.tree, now.a, previous, 2);
  const holding = plan.layers.findIndex((l) => Array.from(l.entries).some((i) => tree.path(i) === rel));
  assert.ok(holding >= 0);
  assert.deepEqual(
    previous.filter((p) => !kept.some((k) => k.previous === p)),
    [previous[holding]],
    'only the layer holding the changed file is no longer kept',
  );
});
