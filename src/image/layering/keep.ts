/**
 * Which layers of the previous image (`--previous`) a build keeps.
 *
 * A previous layer is a candidate when every component it lists is in the
 * tree and no hard link ties one of them to a component outside it. A
 * candidate is kept when its tar, written from the tree as it is now
 * (hashed, not compressed), has the previous layer's DiffID, and none of
 * its components is in a layer kept before it (an image whose base was
 * layered too may list a component twice): the same bytes, so the previous
 * blob is the layer, and is copied, mounted or found at the destination
 * instead of written. The DiffID is the image's own record of the bytes, so images
 * from any earlier version can be checked, and a build that has no previous
 * image reads no file's content beyond writing its layers.
 *
 * This must be known before the rest is packed (a kept layer's components
 * are not packed again), so a build with --previous reads the candidates'
 * files once more than one without; what that costs is reading and
 * hashing, never compressing.
 */
import pLimit from 'p-limit';
import { Sha256Counter } from '../../oci/digest.js';
import { BufferPool } from '../../util/buffer-pool.js';
import { tarFrames } from '../tar/frames.js';
import type { PreviousLayer } from './annotations.js';
import type { Assignment } from './assign.js';
import { entriesOf, type KeptLayer, unitsOf } from './plan.js';
import { layerEntries, type ScannedTree } from './tree-scan.js';

/** Tar is hashed in pieces of this size, from a few reused buffers. */
const PIECE = 1 << 20;

/** The previous layers that could be kept: all their components here, and whole. */
export function keepCandidates(tree: ScannedTree, a: Assignment, previous: PreviousLayer[]): KeptLayer[] {
  const unitOf = unitsOf(tree, a);
  const byName = new Map(a.components.map((c, i) => [c.name, i]));
  const out: KeptLayer[] = [];
  for (const prev of previous) {
    const comps = prev.components?.map((n) => byName.get(n));
    if (!comps || comps.length === 0 || comps.some((c) => c === undefined)) continue;
    const ids = comps as number[];
    const units = new Set(ids.map((c) => unitOf[c]!));
    const members = new Set(ids);
    if (!a.components.every((_, c) => !units.has(unitOf[c]!) || members.has(c))) continue;
    out.push({ components: ids, previous: prev });
  }
  return out;
}

/**
 * Each candidate's entries. entriesOf() gives each component one layer, so
 * candidates that share a component (listed twice by the previous image)
 * are listed in separate passes; usually there is one.
 */
function candidateEntries(tree: ScannedTree, a: Assignment, candidates: KeptLayer[]): Uint32Array[] {
  const out: Uint32Array[] = new Array(candidates.length);
  let left = candidates.map((_, n) => n);
  while (left.length > 0) {
    const used = new Uint8Array(a.components.length);
    const pass: number[] = [];
    const later: number[] = [];
    for (const n of left) {
      const comps = candidates[n]!.components;
      if (comps.some((c) => used[c])) later.push(n);
      else {
        for (const c of comps) used[c] = 1;
        pass.push(n);
      }
    }
    entriesOf(
      tree,
      a,
      pass.map((n) => candidates[n]!.components),
    ).forEach((l, i) => {
      out[pass[i]!] = l.entries;
    });
    left = later;
  }
  return out;
}

/** The DiffID the tar of `entries` would have, written from the tree now. */
export async function treeDiffId(tree: ScannedTree, entries: Uint32Array, signal?: AbortSignal): Promise<string> {
  signal?.throwIfAborted();
  const counter = new Sha256Counter();
  const pool = new BufferPool(PIECE, 2);
  for await (const piece of tarFrames(layerEntries(tree, entries), PIECE, pool.take)) {
    signal?.throwIfAborted();
    counter.update(piece);
    pool.give(piece);
  }
  return counter.digest();
}

/** The candidates whose tar, written from the tree now, has the previous layer's DiffID; `jobs` checked at once. */
export async function unchangedLayers(tree: ScannedTree, a: Assignment, previous: PreviousLayer[], jobs: number, signal?: AbortSignal): Promise<KeptLayer[]> {
  const candidates = keepCandidates(tree, a, previous);
  const lists = candidateEntries(tree, a, candidates);
  // The first failure stops the others at their next piece.
  const stop = new AbortController();
  const stopped = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const limit = pLimit(jobs);
  const checks = candidates.map((k, n) => limit(async () => (await treeDiffId(tree, lists[n]!, stopped)) === k.previous.diffID));
  try {
    const same = await Promise.all(checks);
    // In order: a component is kept in the first unchanged layer that lists it.
    const taken = new Uint8Array(a.components.length);
    return candidates.filter((k, n) => {
      if (!same[n] || k.components.some((c) => taken[c])) return false;
      for (const c of k.components) taken[c] = 1;
      return true;
    });
  } catch (err) {
    stop.abort();
    await Promise.allSettled(checks);
    throw err;
  }
}
