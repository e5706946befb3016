/**
 * Layering benchmark (`npm run bench -- layering`), on two trees of the
 * machine's installed dpkg packages (files of their `info/*.list`, a
 * status file for them):
 *
 * - the update, on a tree shaped like the issue's (~280 MB of ~240
 *   packages: every k-th installed package by name of at most 32 MiB, k
 *   chosen for BENCH_LAYERING_PACKAGES, default 240, up to
 *   BENCH_LAYERING_UPDATE_MIB of installed size, default 265): v1, then a
 *   routine update — 3 small packages (under 300 KiB) with a changed file
 *   each, 1 added, 1 removed — built with `--previous v1` and without, and
 *   as single layers: the bytes of layers it adds against the changed files
 *   alone (tar + zstd -3) and against the image;
 * - the cost, on a tree of up to BENCH_LAYERING_MIB of installed size
 *   (default 1024), padded with incompressible files (sizes cycling through
 *   4 KiB to 4 MiB, a component directory of their own) to that many MiB of
 *   file content when the packages fall short, built single-layer and with
 *   `--layering components`, alternately, BENCH_LAYERING_RUNS times
 *   (default 2): time, CPU time and peak RSS side by side, and their ratios;
 *   then a sweep over its components without --previous: each removed (or,
 *   the same pair the other way, added) alone, how many of the layers
 *   change, at the default and at twice the default --max-layers.
 *
 * Each figure with a limit is printed with it and PASS or FAIL.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assignComponents, LARGE_FILE } from '../src/image/layering/assign.js';
import { readDatabases } from '../src/image/layering/build-layers.js';
import { type PackUnit, packUnits } from '../src/image/layering/pack.js';
import { scanTree } from '../src/image/layering/tree-scan.js';
import { type HostPackage, hostPackages, makeDpkgTree, packagePaths } from '../test/helpers/dpkg-tree.js';
import { mib, timed } from './util.js';

interface Report {
  layers: Array<{ digest: string; size: number; components?: string[] }>;
}

interface Build {
  seconds: number;
  cpuSeconds: number;
  peakRss: number;
  report: Report;
}

async function build(tree: string, layout: string, tag: string, extra: string[]): Promise<Build> {
  const r = await timed(
    'oci-os',
    ['image', 'build', '--rootfs', tree, '--layer-compression', 'zstd', '--source-date-epoch', '1700000000', '-o', `oci:${layout}:${tag}`, '--json', ...extra],
    { node: true },
  );
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds!, peakRss: r.peakRss!, report: JSON.parse(r.stdout) as Report };
}

/** Bytes of file content under `root`. */
function treeBytes(root: string): number {
  return Number(spawnSync('sh', ['-c', 'find "$0" -type f -printf "%s\\n" | awk "{s+=\\$1} END {print s+0}"', root], { encoding: 'utf8' }).stdout.trim());
}

/** Pads `root` with incompressible files up to `target` bytes of content; returns the bytes added. */
async function pad(root: string, target: number): Promise<number> {
  const dir = join(root, 'srv/padding');
  await mkdir(dir, { recursive: true });
  let added = 0;
  for (let n = 0, have = treeBytes(root); have + added < target; n++) {
    const size = Math.min(4096 << (2 * (n % 6)), target - have - added);
    await writeFile(join(dir, `f${n}`), randomBytes(size));
    added += size;
  }
  return added;
}

/**
 * Layers of the tree (without --previous) that change when one component is removed — or added, the
 * same pair the other way — for each component in turn: packed as the build packs them, the
 * components as units (hard links between packages, which would tie some together, are ignored).
 */
async function reshuffle(root: string, budgets: number[]): Promise<Record<string, string>> {
  const warnings: string[] = [];
  const tree = await scanTree(root, {}, warnings);
  const a = assignComponents(tree, await readDatabases(tree, warnings), LARGE_FILE);
  const bytes = new Float64Array(a.components.length);
  for (let i = 0; i < tree.count; i++) bytes[a.of[i]!]! += 512 + Math.ceil(tree.size(i) / 512) * 512;
  const units: PackUnit[] = a.components.map((c, i) => ({ name: c.name, bytes: bytes[i]!, volatile: c.volatile }));
  const key = (us: PackUnit[], bins: number[][]) =>
    new Set(
      bins.map((b) =>
        b
          .map((u) => us[u]!.name)
          .sort()
          .join('\n'),
      ),
    );
  const out: Record<string, string> = {};
  for (const budget of budgets) {
    const before = key(units, packUnits(units, budget));
    const counts = units
      .map((_, i) => {
        const less = units.filter((_, j) => j !== i);
        const after = key(less, packUnits(less, budget));
        return [...before].filter((b) => !after.has(b)).length;
      })
      .sort((x, y) => x - y);
    const avg = counts.reduce((s, c) => s + c, 0) / counts.length;
    const many = counts.filter((c) => c > 5).length;
    out[`--max-layers ${budget} (${before.size} layers, ${units.length} components)`] =
      `layers changed: average ${avg.toFixed(2)}, median ${counts[counts.length >> 1]}, 90th percentile ${counts[Math.floor(counts.length * 0.9)]}, most ${counts.at(-1)}; more than 5 for ${many} components`;
  }
  return out;
}

/** Bytes of the layers of `next` that `prev` does not have. */
function newBytes(prev: Report, next: Report): number {
  const had = new Set(prev.layers.map((l) => l.digest));
  return next.layers.filter((l) => !had.has(l.digest)).reduce((s, l) => s + l.size, 0);
}
const total = (r: Report) => r.layers.reduce((s, l) => s + l.size, 0);

/** A regular file of a package (its largest documentation or data file under usr/share). */
function fileOf(tree: string, p: HostPackage): string | undefined {
  return packagePaths(p).find((f) => f.startsWith('usr/share/') && spawnSync('test', ['-f', join(tree, f), '-a', '!', '-L', join(tree, f)]).status === 0);
}

/** PASS or FAIL, with the figure and its limit. */
const judge = (ok: boolean, figure: string, limit: string) => `${ok ? 'PASS' : 'FAIL'}: ${figure} (limit ${limit})`;

/** The routine update on the issue-shaped tree. */
export async function benchUpdate(dir: string, all: HostPackage[]): Promise<Record<string, unknown>> {
  const budget = Number(process.env.BENCH_LAYERING_UPDATE_MIB ?? 265) * 1024;
  const want = Number(process.env.BENCH_LAYERING_PACKAGES ?? 240);
  const eligible = all.filter((p) => p.kib <= 32 * 1024);
  const stride = Math.max(1, Math.round(eligible.length / want));
  const chosen: HostPackage[] = [];
  let kib = 0;
  for (let i = 0; i < eligible.length; i += stride) {
    const p = eligible[i]!;
    if (kib + p.kib > budget) continue;
    chosen.push(p);
    kib += p.kib;
  }
  return await routineUpdate(dir, all, chosen, 0);
}

/**
 * A routine update of a tree of `chosen` (padded to `padTo` bytes of file content, when more): 3
 * small packages (under 300 KiB) with a changed file each, 1 added, 1 removed; built as v1, then v2
 * with `--previous v1` and without, and both as single layers. The bytes of layers v2 adds are
 * judged against the changed files alone (tar + zstd -3) and against the image.
 */
export async function routineUpdate(dir: string, all: HostPackage[], chosen: HostPackage[], padTo: number): Promise<Record<string, unknown>> {
  const kib = chosen.reduce((s, p) => s + p.kib, 0);
  const smalls = chosen.filter((p) => p.kib > 0 && p.kib < 300);
  const changed = [smalls[5], smalls[Math.floor(smalls.length / 2)], smalls[smalls.length - 5]].filter((p): p is HostPackage => !!p);
  const removed = smalls[smalls.length - 10]!;
  const added = all.find((p) => !chosen.includes(p) && p.kib > 0 && p.kib < 2048)!;
  const v1Tree = join(dir, 'layering-v1');
  const v2Tree = join(dir, 'layering-v2');
  for (const d of [v1Tree, v2Tree]) await rm(d, { recursive: true, force: true });
  await makeDpkgTree(
    v1Tree,
    chosen.map((p) => p.name),
  );
  await makeDpkgTree(
    v2Tree,
    [...chosen.filter((p) => p !== removed), added].map((p) => p.name),
  );
  // The same padding in both (a directory of its own, unchanged by the update).
  const padded = padTo > 0 ? await pad(v1Tree, padTo) : 0;
  if (padded > 0) spawnSync('cp', ['-a', join(v1Tree, 'srv'), v2Tree]);
  const v1Bytes = treeBytes(v1Tree);
  const touched: string[] = [];
  for (const p of changed) {
    const f = fileOf(v2Tree, p);
    if (!f) continue;
    await appendFile(join(v2Tree, f), `\n# ${p.name} updated\n`);
    touched.push(f);
  }
  // What the update changes: the touched files, the added package's, the dpkg status file.
  const changedList = [...touched, ...packagePaths(added), 'var/lib/dpkg/status'];
  const tarZstd = spawnSync('sh', ['-c', `tar -C "$0" --no-recursion -cf - -T - 2>/dev/null | zstd -3 -q -c | wc -c`, v2Tree], {
    input: changedList.join('\n') + '\n',
    encoding: 'utf8',
  });
  const changedBytes = Number(tarZstd.stdout.trim());

  const layout = join(dir, 'layering-update');
  await rm(layout, { recursive: true, force: true });
  const single1 = await build(v1Tree, layout, 'single-v1', []);
  const v1 = await build(v1Tree, layout, 'v1', ['--layering', 'components']);
  const single2 = await build(v2Tree, layout, 'single-v2', []);
  const v2 = await build(v2Tree, layout, 'v2', ['--layering', 'components', '--previous', `oci:${layout}:v1`]);
  const fresh = await build(v2Tree, layout, 'v2-fresh', ['--layering', 'components']);
  await rm(layout, { recursive: true, force: true });
  for (const d of [v1Tree, v2Tree]) await rm(d, { recursive: true, force: true });
  const limit = 2 * changedBytes + 4 * 2 ** 20;
  const figures = (name: string, prev: Report, next: Report): Record<string, string> => {
    const bytes = newBytes(prev, next);
    const share = (100 * bytes) / total(next);
    const fresh = next.layers.filter((l) => !prev.layers.some((o) => o.digest === l.digest));
    const layers = fresh.length;
    const largest = fresh.sort((x, y) => y.size - x.size)[0];
    return {
      ...(largest?.components && {
        [`${name}: largest new layer`]: `${mib(largest.size)}, ${largest.components.length} components (${largest.components.slice(0, 4).join(' ')}${largest.components.length > 4 ? ' …' : ''})`,
      }),
      [`${name}: new bytes (${layers} of ${next.layers.length} layers)`]: judge(bytes <= limit, mib(bytes), `2 × changed + 4 MiB = ${mib(limit)}`),
      [`${name}: share of the image (${mib(total(next))})`]: judge(share <= 8, `${share.toFixed(2)} %`, '8 %'),
    };
  };
  return {
    tree: `${chosen.length} packages, ${mib(kib * 1024)} installed; ${mib(v1Bytes)} of files${padded > 0 ? ` (${mib(padded)} of it padding)` : ''}`,
    update: `changed ${changed.map((p) => p.name).join(', ')}; added ${added.name}; removed ${removed.name}`,
    'changed files, tar + zstd -3': mib(changedBytes),
    ...figures('with --previous', v1.report, v2.report),
    ...figures('without --previous', v1.report, fresh.report),
    ...figures('single layer', single1.report, single2.report),
  };
}

/** The packages of the large tree: each of at most 64 MiB, by name, up to BENCH_LAYERING_MIB of installed size. */
export function largeTreePackages(all: HostPackage[]): HostPackage[] {
  const budget = Number(process.env.BENCH_LAYERING_MIB ?? 1024) * 1024;
  const chosen: HostPackage[] = [];
  let kib = 0;
  for (const p of all) {
    if (p.kib > 64 * 1024 || kib + p.kib > budget) continue;
    chosen.push(p);
    kib += p.kib;
  }
  return chosen;
}

/** Time and memory of layering a large tree against the single-layer build, and the sweep. */
export async function benchCost(dir: string, all: HostPackage[]): Promise<Record<string, unknown>> {
  const budget = Number(process.env.BENCH_LAYERING_MIB ?? 1024) * 1024;
  const chosen = largeTreePackages(all);
  const kib = chosen.reduce((s, p) => s + p.kib, 0);
  const tree = join(dir, 'layering-large');
  await rm(tree, { recursive: true, force: true });
  await makeDpkgTree(
    tree,
    chosen.map((p) => p.name),
  );
  const padded = await pad(tree, budget * 1024);
  const bytes = treeBytes(tree);
  const layout = join(dir, 'layering-out');
  await rm(layout, { recursive: true, force: true });
  // Single-layer and layered builds alternately, so that both see the same load; best of each.
  const singles: Build[] = [];
  const layereds: Build[] = [];
  for (let run = 0; run < Number(process.env.BENCH_LAYERING_RUNS ?? 2); run++) {
    singles.push(await build(tree, layout, 'single', []));
    layereds.push(await build(tree, layout, 'layered', ['--layering', 'components']));
  }
  await rm(layout, { recursive: true, force: true });
  const sweep = await reshuffle(tree, [64, 128]);
  await rm(tree, { recursive: true, force: true });
  const best = (bs: Build[], k: 'seconds' | 'cpuSeconds' | 'peakRss') => Math.min(...bs.map((b) => b[k]));
  const runs = (bs: Build[]) => bs.map((b) => `${b.seconds.toFixed(1)} s, ${b.cpuSeconds.toFixed(1)} s CPU, ${mib(b.peakRss)}`).join('; ');
  const ratio = best(layereds, 'seconds') / best(singles, 'seconds');
  return {
    tree: `${chosen.length} packages, ${mib(kib * 1024)} installed; ${mib(bytes)} of files (${mib(padded)} of it padding)`,
    'single layer (each run: time, CPU, peak RSS)': runs(singles),
    'layered (each run: time, CPU, peak RSS)': runs(layereds),
    'time ratio, layered / single (best of each)': judge(ratio <= 1.3, ratio.toFixed(2), '1.3'),
    'CPU ratio, layered / single (best of each)': +(best(layereds, 'cpuSeconds') / best(singles, 'cpuSeconds')).toFixed(2),
    'peak RSS, layered − single (best of each)': mib(best(layereds, 'peakRss') - best(singles, 'peakRss')),
    'one component removed or added, without --previous': sweep,
  };
}

export async function benchLayering(dir: string): Promise<Record<string, unknown>> {
  const all = [...hostPackages().values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    'update (issue-shaped tree)': await benchUpdate(dir, all),
    'cost (large tree)': await benchCost(dir, all),
    'update (large tree)': await routineUpdate(dir, all, largeTreePackages(all), Number(process.env.BENCH_LAYERING_MIB ?? 1024) * 2 ** 20),
  };
}
