/**
 * From an assignment to layers: components tied by hard links become one
 * unit, the previous image's layers found unchanged (keep.ts) stay as they
 * were, and the rest is packed (pack.ts). Each layer lists the entries it
 * writes, in walk order: its own, and the directories above them, which
 * carry the same metadata in every layer that needs them.
 */
import type { PreviousLayer } from './annotations.js';
import type { Assignment } from './assign.js';
import { type PackUnit, packUnits } from './pack.js';
import type { ScannedTree } from './tree-scan.js';

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

/** The plan: its layers, kept ones (with `previous`) first. */
export interface LayerPlan {
  layers: PlannedLayer[];
}

/** A previous layer found unchanged: its components (indices) and the layer. */
export interface KeptLayer {
  components: number[];
  previous: PreviousLayer;
}

const tarBytes = (size: number) => 512 + Math.ceil(size / 512) * 512;

/** Union-find over components: a hard link and its target are one unit (the root of each component's). */
export function unitsOf(tree: ScannedTree, a: Assignment): Int32Array {
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
 * Plans the layers of `tree`: at most `maxLayers`, the `kept` layers of the
 * previous image first (as many as leave room for what changed), then the
 * rest packed.
 */
export function planLayers(tree: ScannedTree, a: Assignment, maxLayers: number, keep: KeptLayer[] = []): LayerPlan {
  const unitOf = unitsOf(tree, a);
  const compBytes = new Float64Array(a.components.length);
  for (let i = 0; i < tree.count; i++) compBytes[a.of[i]!]! += tarBytes(tree.size(i));
  let kept = keep.map((k) => ({ comps: k.components, prev: k.previous, bytes: k.components.reduce((s, c) => s + compBytes[c]!, 0) }));
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
    groups.map((g) => g.comps),
  ).map((l, i) => ({
    ...l,
    components: [...groups[i]!.comps].sort((x, y) => x - y),
    previous: groups[i]!.prev,
  }));
  return { layers };
}

/**
 * The entries of each group of components (a layer): its components' and
 * the directories above them, in walk order.
 */
export function entriesOf(tree: ScannedTree, a: Assignment, groups: number[][]): Array<{ entries: Uint32Array; bytes: number }> {
  const parent = tree.parent;
  const layerOf = new Int32Array(a.components.length).fill(-1);
  groups.forEach((g, l) => {
    for (const c of g) layerOf[c] = l;
  });
  const lists: number[][] = groups.map(() => []);
  const stamp = new Int32Array(tree.count).fill(-1);
  // A directory may be wanted by several layers: stamp per layer while filling, walking each layer's entries.
  const own: number[][] = groups.map(() => []);
  for (let i = 0; i < tree.count; i++) own[layerOf[a.of[i]!]!]?.push(i);
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
