/**
 * From an assignment to layers: components tied by hard links become one
 * unit, every component gets a content digest, the layers of a previous
 * image whose components are all unchanged are kept as they were, and the
 * rest is packed (pack.ts). Each layer lists the entries it writes, in walk
 * order: its own, and the directories above them, which carry the same
 * metadata in every layer that needs them.
 */
import { createHash } from 'node:crypto';
import { BLOCK, encodeTarHeader } from '../tar/header.js';
import { groupDigest, type PreviousLayer } from './annotations.js';
import type { Assignment } from './assign.js';
import { type PackUnit, packUnits } from './pack.js';
import { contentDigest, hasContent, type ScannedTree } from './tree-scan.js';

/** One layer to write (or to take from the previous image). */
export interface PlannedLayer {
  /** Component indices. */
  components: number[];
  /** Entry indices, in walk order. */
  entries: Uint32Array;
  /** Bytes of tar (headers and padded content). */
  bytes: number;
  /** The previous image's layer it equals, when kept. */
  previous?: PreviousLayer;
}

/** The plan, with what it was made from. */
export interface LayerPlan {
  layers: PlannedLayer[];
  /**
   * Content digests of the components given (by default all), once their
   * files are hashed: by scanTree, or by writing the layer that holds them.
   */
  digests: (components?: readonly number[]) => Buffer[];
  /** Previous layers kept, and previous layers with a plan. */
  kept: number;
  previousLayers: number;
}

const tarBytes = (size: number) => 512 + Math.ceil(size / 512) * 512;

/**
 * Each component's content digest: its entries' tar headers and content
 * digests in walk order, each preceded by the headers of directories above
 * it not yet counted, so that equal digests mean equal bytes in any layer.
 * Taken when first asked for, one component at a time: a component's files
 * are all in one layer, so its digest can be taken as soon as that layer is
 * written, while others are still being written.
 */
function componentDigests(tree: ScannedTree, a: Assignment, parent: Int32Array): (c: number) => Buffer {
  // Each component's entries in walk order (a counting sort), and the directories counted marked in
  // one array: a few bytes an entry, where a set of entries per component cost tens of bytes each.
  const n = tree.count;
  const k = a.components.length;
  const start = new Uint32Array(k + 1);
  for (let i = 0; i < n; i++) start[a.of[i]! + 1]!++;
  for (let c = 0; c < k; c++) start[c + 1]! += start[c]!;
  const order = new Uint32Array(n);
  const fill = start.slice(0, k);
  for (let i = 0; i < n; i++) order[fill[a.of[i]!]!++] = i;
  const seen = new Int32Array(n).fill(-1);
  const known: Array<Buffer | undefined> = new Array(k);
  // Each header is hashed at once: one buffer serves them all.
  const scratch = Buffer.alloc(BLOCK);
  const digestOf = (c: number): Buffer => {
    const h = createHash('sha256');
    for (let j = start[c]!; j < start[c + 1]!; j++) {
      const i = order[j]!;
      const above: number[] = [];
      for (let p = parent[i]!; p >= 0 && seen[p] !== c; p = parent[p]!) above.push(p);
      for (const p of above.reverse()) {
        seen[p] = c;
        h.update('A').update(encodeTarHeader(tree.entry(p), scratch));
      }
      seen[i] = c;
      h.update('E').update(encodeTarHeader(tree.entry(i), scratch));
      if (hasContent(tree, i)) h.update(contentDigest(tree, i));
    }
    return h.digest();
  };
  return (c) => (known[c] ??= digestOf(c));
}

/** Union-find over components: a hard link and its target are one unit. */
function unitsOf(tree: ScannedTree, a: Assignment): Int32Array {
  const up = new Int32Array(a.components.length).map((_, i) => i);
  const find = (x: number): number => {
    while (up[x] !== x) x = up[x] = up[up[x]!]!;
    return x;
  };
  for (let i = 0; i < tree.count; i++) {
    const target = tree.type(i) === 'link' ? tree.linkname(i) : undefined;
    const t = target === undefined ? undefined : tree.find(target);
    if (t === undefined) continue;
    const x = find(a.of[i]!);
    const y = find(a.of[t]!);
    if (x !== y) up[Math.max(x, y)] = Math.min(x, y);
  }
  return up.map((_, i) => find(i));
}

/**
 * Plans the layers of `tree`: at most `maxLayers`, keeping what `previous`
 * layers still hold unchanged. With `previous`, the tree must be hashed
 * already; without, packing needs no content and the digests can be taken
 * once the layers are written.
 */
export function planLayers(tree: ScannedTree, a: Assignment, maxLayers: number, previous: PreviousLayer[] = []): LayerPlan {
  const parent = tree.parent;
  const digestOf = componentDigests(tree, a, parent);
  const digests = (comps: readonly number[] = a.components.map((_, c) => c)) => comps.map(digestOf);
  const unitOf = unitsOf(tree, a);
  const compBytes = new Float64Array(a.components.length);
  for (let i = 0; i < tree.count; i++) compBytes[a.of[i]!]! += tarBytes(tree.size(i));
  const content = (comps: number[]) => groupDigest(comps.map((c) => ({ name: a.components[c]!.name, digest: digestOf(c) })));

  // Previous layers kept: every component still here, the same content, and no unit reaching outside.
  const byName = new Map(a.components.map((c, i) => [c.name, i]));
  const taken = new Uint8Array(a.components.length);
  let kept: Array<{ comps: number[]; prev: PreviousLayer; bytes: number }> = [];
  for (const prev of previous) {
    const comps = prev.components?.map((n) => byName.get(n));
    if (!comps || comps.length === 0 || comps.some((c) => c === undefined || taken[c])) continue;
    const ids = comps as number[];
    if (content(ids) !== prev.content) continue;
    const units = new Set(ids.map((c) => unitOf[c]!));
    const members = new Set(ids);
    const whole = a.components.every((_, c) => !units.has(unitOf[c]!) || members.has(c));
    if (!whole) continue;
    for (const c of ids) taken[c] = 1;
    kept.push({ comps: ids, prev, bytes: ids.reduce((s, c) => s + compBytes[c]!, 0) });
  }
  // The rest, as units.
  const unitIndex = new Map<number, number>();
  const units: Array<PackUnit & { comps: number[] }> = [];
  const poolOf = (keptNow: typeof kept) => {
    const inKept = new Set(keptNow.flatMap((k) => k.comps));
    unitIndex.clear();
    units.length = 0;
    a.components.forEach((c, i) => {
      if (inKept.has(i)) return;
      const root = unitOf[i]!;
      let u = unitIndex.get(root);
      if (u === undefined) {
        unitIndex.set(root, (u = units.length));
        units.push({ name: c.name, bytes: 0, volatile: true, comps: [] });
      }
      const unit = units[u]!;
      unit.comps.push(i);
      unit.bytes += compBytes[i]!;
      unit.volatile &&= c.volatile;
      if (c.name < unit.name) unit.name = c.name;
    });
  };
  poolOf(kept);
  // Room for what changed: give up the smallest kept layers when the budget is spent.
  while (units.length > 0 && kept.length > 0 && maxLayers - kept.length < Math.min(units.length, 2)) {
    const smallest = kept.reduce((m, k, i) => (k.bytes < kept[m]!.bytes ? i : m), 0);
    kept = kept.filter((_, i) => i !== smallest);
    poolOf(kept);
  }
  const bins = units.length > 0 ? packUnits(units, maxLayers - kept.length) : [];
  const groups = [
    ...kept.map((k) => ({ comps: k.comps, prev: k.prev as PreviousLayer | undefined })),
    ...bins.map((b) => ({ comps: b.flatMap((u) => units[u]!.comps), prev: undefined })),
  ];
  const layers = entriesOf(
    tree,
    a,
    parent,
    groups.map((g) => g.comps),
  ).map((l, i) => ({
    ...l,
    components: [...groups[i]!.comps].sort((x, y) => x - y),
    previous: groups[i]!.prev,
  }));
  return { layers, digests, kept: kept.length, previousLayers: previous.length };
}

/** The entries of each group: its components' and the directories above them, in walk order. */
function entriesOf(tree: ScannedTree, a: Assignment, parent: Int32Array, groups: number[][]): Array<{ entries: Uint32Array; bytes: number }> {
  const layerOf = new Int32Array(a.components.length).fill(-1);
  groups.forEach((g, l) => {
    for (const c of g) layerOf[c] = l;
  });
  const lists: number[][] = groups.map(() => []);
  const stamp = new Int32Array(tree.count).fill(-1);
  // A directory may be wanted by several layers: stamp per layer while filling, walking each layer's entries.
  const own: number[][] = groups.map(() => []);
  for (let i = 0; i < tree.count; i++) own[layerOf[a.of[i]!]!]!.push(i);
  return own.map((mine, l) => {
    const out = lists[l]!;
    for (const i of mine) {
      if (stamp[i] !== l) {
        stamp[i] = l;
        out.push(i);
      }
      for (let p = parent[i]!; p >= 0 && stamp[p] !== l; p = parent[p]!) {
        stamp[p] = l;
        out.push(p);
      }
    }
    const entries = Uint32Array.from(out).sort();
    let bytes = 1024;
    for (const i of entries) bytes += tarBytes(tree.size(i));
    return { entries, bytes };
  });
}
