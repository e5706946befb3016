/**
 * Layering benchmark (`npm run bench -- layering`): a tree of the machine's
 * installed dpkg packages (files of their `info/*.list`, a status file for
 * them; up to BENCH_LAYERING_MIB of installed size, default 1024), built
 * as v1 with `--layering components`, then a routine update — 3 small
 * packages with a changed file each, 1 package added, 1 removed — built
 * with `--previous v1` and without. Reports the bytes of layers the update
 * adds against the changed files alone (tar + zstd -3) and against the
 * image, the same for the single-layer build, and the build times.
 */
import { spawnSync } from 'node:child_process';
import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hostPackages, makeDpkgTree, packagePaths, type HostPackage } from '../test/helpers/dpkg-tree.js';
import { mib, timed } from './util.js';

interface Report { layers: Array<{ digest: string; size: number }> }

async function build(tree: string, layout: string, tag: string, extra: string[]): Promise<{ seconds: number; peakRss: number; report: Report }> {
  const r = await timed('oci-os', ['image', 'build', '--rootfs', tree, '--layer-compression', 'zstd', '--source-date-epoch', '1700000000', '-o', `oci:${layout}:${tag}`, '--json', ...extra], { node: true });
  return { seconds: r.seconds, peakRss: r.peakRss!, report: JSON.parse(r.stdout) as Report };
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

export async function benchLayering(dir: string): Promise<Record<string, unknown>> {
  const budget = Number(process.env.BENCH_LAYERING_MIB ?? 1024) * 1024;
  const all = [...hostPackages().values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const chosen: HostPackage[] = [];
  let kib = 0;
  for (const p of all) {
    if (p.kib > 64 * 1024 || kib + p.kib > budget) continue;
    chosen.push(p);
    kib += p.kib;
  }
  const smalls = chosen.filter((p) => p.kib > 0 && p.kib < 300);
  const changed = [smalls[5], smalls[Math.floor(smalls.length / 2)], smalls[smalls.length - 5]].filter((p): p is HostPackage => !!p);
  const removed = smalls[smalls.length - 10]!;
  const added = all.find((p) => !chosen.includes(p) && p.kib > 0 && p.kib < 2048)!;
  const v1Tree = join(dir, 'layering-v1');
  const v2Tree = join(dir, 'layering-v2');
  for (const d of [v1Tree, v2Tree]) await rm(d, { recursive: true, force: true });
  await makeDpkgTree(v1Tree, chosen.map((p) => p.name));
  await makeDpkgTree(v2Tree, [...chosen.filter((p) => p !== removed), added].map((p) => p.name));
  const touched: string[] = [];
  for (const p of changed) {
    const f = fileOf(v2Tree, p);
    if (!f) continue;
    await appendFile(join(v2Tree, f), `\n# ${p.name} updated\n`);
    touched.push(f);
  }
  // What the update changes: the touched files, the added package's, the dpkg status file.
  const changedList = [...touched, ...packagePaths(added), 'var/lib/dpkg/status'];
  const tarZstd = spawnSync('sh', ['-c', `tar -C "$0" --no-recursion -cf - -T - 2>/dev/null | zstd -3 -q -c | wc -c`, v2Tree], { input: changedList.join('\n') + '\n', encoding: 'utf8' });
  const changedBytes = Number(tarZstd.stdout.trim());

  const layout = join(dir, 'layering-out');
  await rm(layout, { recursive: true, force: true });
  const single1 = await build(v1Tree, layout, 'single-v1', []);
  const single2 = await build(v2Tree, layout, 'single-v2', []);
  const v1 = await build(v1Tree, layout, 'v1', ['--layering', 'components']);
  const v2 = await build(v2Tree, layout, 'v2', ['--layering', 'components', '--previous', `oci:${layout}:v1`]);
  const fresh = await build(v2Tree, layout, 'v2-fresh', ['--layering', 'components']);
  const image = total(v2.report);
  const upd = newBytes(v1.report, v2.report);
  const limit = 2 * changedBytes + 4 * 2 ** 20;
  await rm(layout, { recursive: true, force: true });
  for (const d of [v1Tree, v2Tree]) await rm(d, { recursive: true, force: true });
  return {
    tree: `${chosen.length} packages, ${mib(kib * 1024)} installed`,
    update: `changed ${changed.map((p) => p.name).join(', ')}; added ${added.name}; removed ${removed.name}`,
    'changed files, tar + zstd -3': mib(changedBytes),
    'image (v2, layered)': mib(image),
    layers: v2.report.layers.length,
    'with --previous: new bytes': mib(upd),
    'with --previous: ≤ 2 × changed + 4 MiB': `${upd <= limit} (limit ${mib(limit)})`,
    'with --previous: share of the image': `${(100 * upd / image).toFixed(2)} % (target ≤ 8 %)`,
    'with --previous: new layers': v2.report.layers.filter((l) => !v1.report.layers.some((o) => o.digest === l.digest)).length,
    'without --previous: new bytes': mib(newBytes(v1.report, fresh.report)),
    'without --previous: share of the image': `${(100 * newBytes(v1.report, fresh.report) / total(fresh.report)).toFixed(2)} %`,
    'without --previous: new layers': fresh.report.layers.filter((l) => !v1.report.layers.some((o) => o.digest === l.digest)).length,
    'single layer: new bytes': mib(newBytes(single1.report, single2.report)),
    'single layer: share of the image': `${(100 * newBytes(single1.report, single2.report) / total(single2.report)).toFixed(2)} %`,
    'build seconds: single layer v1': +single1.seconds.toFixed(2),
    'build seconds: layered v1': +v1.seconds.toFixed(2),
    'time ratio (layered / single)': +(v1.seconds / single1.seconds).toFixed(2),
    'peak RSS: single / layered': `${mib(single1.peakRss)} / ${mib(v1.peakRss)}`,
  };
}
