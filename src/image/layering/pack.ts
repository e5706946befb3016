/**
 * Packing units (components tied together by hard links) into at most
 * `budget` layers.
 *
 * What an update costs is the bytes of every layer holding something that
 * changed. Each unit changes with some probability p per update that the
 * tree does not tell us well (a security suffix in a version is a weak
 * hint), so we take p as equal for every package, and higher for volatile
 * units (what no package owns: generated configuration, the package
 * database itself), which change with almost every update. The expected
 * cost of a layer is then about p × bytes × units: a layer mixing one large
 * stable unit with many small ones is uploaded whenever any small one
 * changes. Hence:
 *
 * 1. With no more units than layers, every unit gets its own layer.
 * 2. Volatile units get their own layers (an eighth of the budget, at
 *    least one), so they never drag a package along.
 * 3. A unit of at least its fair share of the bytes (total / layers left)
 *    gets a layer of its own (at most half of the budget go this way).
 * 4. The rest is ordered by size class (factors of 4), then by name, and
 *    cut into runs whose cost bytes × units stays near a target T: a run
 *    ends after a unit once its cost reaches T and the unit's name hashes
 *    to 0 mod 4, or at 4T, and always where the size class changes. T is
 *    the smallest power of √2 that gives few enough runs.
 *
 * Stability: runs are contiguous in (class, name) order and their ends are
 * chosen by the names near them (content-defined, as rsync and casync cut
 * files), not by counting from the start, so adding or removing a unit
 * changes its own run and, at most, the next run up to where the cut
 * points meet again; T moves only when the total cost crosses a power of
 * √2, and then every run of that list may move. The "layering" section of
 * `npm run bench` sweeps a real tree, removing (or, the same pair the other
 * way, adding) each component alone: of 470 components of 1 GiB of Debian
 * packages at 64 layers, most change 1 layer (their own), the 90th
 * percentile 4, at most 5, average 1.66; at 128 layers the median is 2 but
 * the average 6.2: for 97 components, removing one brings the number of
 * runs at the current T down to the budget (or adding one pushes it over),
 * so T moves by √2 and up to 34 layers are cut again. With 122 of 128
 * layers used the runs at T are near the budget, so many single changes
 * tip it; at 64 no run count was that close.
 * Only --previous, which keeps unchanged layers whatever packing afresh
 * would do, bounds an update by what changed; without it, expect 1-5
 * layers for most single changes and occasionally a third of them.
 *
 * With --previous, an update uploads the layers whose components changed
 * or went, whole: a changed unit drags the rest of its run along (plan.ts
 * repacks those siblings with what is new; a layer is kept or not as a
 * whole, by its DiffID (keep.ts), so which sibling changed is not known). That drag is the bytes of the run, and (4) keeps it small
 * for small units: a run of n units of about s bytes each holds about
 * √(T·s) bytes, so small units share small runs. On a tree like the
 * issue's (239 Debian packages, 254 MiB of files, 64 layers) a small
 * package (under 300 KiB installed; 73 of them) sits in a run of 1.2 MiB
 * of tar on average, 2.5 MiB at most; the bench's routine update (3 small
 * packages changed, 1 added, 1 removed) adds 2.2 MiB of compressed layers
 * with --previous (7 of 64 layers, 2.5 % of the image; the bound 2 ×
 * changed files + 4 MiB is 4.5 MiB) and 3.0 MiB without. A cap on the
 * bytes of any run of small units was tried (1 MiB, doubled until the runs
 * fit the budget): with no layer to spare, every cut it adds is paid for
 * by a higher T, which merges the runs of larger units (two of 15 and 22 MiB appeared); it lowered the
 * worst drag of a small package from 2.5 to 2.0 MiB but raised the average
 * from 1.2 to 1.6 MiB, so the expected cost of an update went up. Splitting
 * with spare layers only (at the T found without a cap) changed nothing
 * there: the runs at that T already took 63 of the 64 layers. On the 1 GiB
 * tree (405 packages, 470 components in 64 layers) the compressed layer
 * holding a small package is 0.5 MiB at the median, 1.1 MiB at the 90th
 * percentile, 2.0 MiB at most (241 such packages), and the bench's routine
 * update there adds 3.6 MiB with --previous (6 of 64 layers, 0.9 % of the
 * image; bound 5.7 MiB), 7.2 MiB without. (A figure of 29 MiB once noted
 * here was not a bench figure and did not come back on this tree.) More
 * layers still shrink the drag: at --max-layers 128 a small package of the
 * issue-shaped tree sits in a run of 0.4 MiB on average, 1.35 MiB at most.
 *
 * Recording a digest of each component in the annotations, so that a
 * changed component could leave a shared layer while its siblings keep
 * theirs, was weighed and not done: a layer's blob is its bytes, and a kept layer
 * still holds the old files of the component that left, so the new layer
 * would have to shadow them (and whiteout what went), which breaks "each
 * path in exactly one layer" and lets the old bytes ship forever. Without
 * shadowing, the siblings are rewritten anyway, so the first update costs
 * the run either way; what such digests could buy is a later update of
 * the same component, by having moved it to a small layer of its own.
 */
import { createHash } from 'node:crypto';

/** What the packer knows of a unit. */
export interface PackUnit {
  name: string;
  /** Bytes of tar it adds. */
  bytes: number;
  volatile: boolean;
}

const byName =
  (units: PackUnit[]) =>
  (a: number, b: number): number => {
    const x = units[a]!.name;
    const y = units[b]!.name;
    return x < y ? -1 : x > y ? 1 : 0;
  };

/** Size class: factors of 4 from 4 KiB. */
export function sizeClass(bytes: number): number {
  return Math.max(0, Math.floor(Math.log2(Math.max(bytes, 1) / 4096) / 2));
}

function nameHash(name: string): number {
  return createHash('sha256').update(name).digest()[0]!;
}

/** Cuts `order` into runs of cost near `target` (see above); `classes` forces cuts where the size class changes. */
function cut(units: PackUnit[], order: number[], target: number, classes: boolean, hashes: number[]): number[][] {
  const runs: number[][] = [];
  let run: number[] = [];
  let bytes = 0;
  for (let k = 0; k < order.length; k++) {
    const u = order[k]!;
    run.push(u);
    bytes += units[u]!.bytes;
    const cost = bytes * run.length;
    const next = order[k + 1];
    const classEnd = classes && next !== undefined && sizeClass(units[next]!.bytes) !== sizeClass(units[u]!.bytes);
    if (next === undefined || classEnd || cost >= 4 * target || (cost >= target && hashes[k]! % 4 === 0)) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
  }
  return runs;
}

/** Runs of `order` (already sorted), at most `budget` of them, with the smallest target that allows it. */
export function contiguousRuns(units: PackUnit[], order: number[], budget: number, classes: boolean): number[][] {
  if (order.length <= budget) return order.map((u) => [u]);
  if (budget <= 1) return [order];
  const hashes = order.map((u) => nameHash(units[u]!.name));
  const total = order.reduce((s, u) => s + units[u]!.bytes, 0) * order.length;
  for (const withClasses of classes ? [true, false] : [false]) {
    for (let k = 0; ; k++) {
      const target = Math.SQRT2 ** k;
      const runs = cut(units, order, target, withClasses, hashes);
      if (runs.length <= budget) return runs;
      if (target > 4 * total) break;
    }
  }
  return [order];
}

/** Packs `units` into at most `budget` (≥ 1) layers; returns each layer's unit indices, in layer order. */
export function packUnits(units: PackUnit[], budget: number): number[][] {
  const all = units.map((_, i) => i);
  const volatile = all.filter((u) => units[u]!.volatile).sort(byName(units));
  const stable = all.filter((u) => !units[u]!.volatile).sort(byName(units));
  if (units.length <= budget) return [...stable, ...volatile].map((u) => [u]);
  if (budget <= 1) return [[...stable, ...volatile]];
  let volBudget = volatile.length === 0 ? 0 : stable.length === 0 ? budget : Math.min(volatile.length, Math.max(1, Math.floor(budget / 8)));
  let stableBudget = budget - volBudget;
  if (stable.length <= stableBudget) {
    stableBudget = stable.length;
    volBudget = budget - stableBudget;
  }
  // Units of their fair share or more, largest first, each on its own.
  const own: number[] = [];
  let rest = [...stable].sort((a, b) => units[b]!.bytes - units[a]!.bytes || byName(units)(a, b));
  let restBytes = rest.reduce((s, u) => s + units[u]!.bytes, 0);
  while (rest.length > 0 && own.length < Math.floor(stableBudget / 2) && stableBudget - own.length > 1) {
    const u = rest[0]!;
    if (units[u]!.bytes * (stableBudget - own.length) < restBytes) break;
    own.push(u);
    restBytes -= units[u]!.bytes;
    rest = rest.slice(1);
  }
  own.sort(byName(units));
  const ordered = rest.sort((a, b) => sizeClass(units[a]!.bytes) - sizeClass(units[b]!.bytes) || byName(units)(a, b));
  const runs = contiguousRuns(units, ordered, stableBudget - own.length, true);
  return [...own.map((u) => [u]), ...runs, ...contiguousRuns(units, volatile, volBudget, false)];
}
