/**
 * Image layer benchmark: `oci-os image build` of a generated ~1 GiB tree
 * (large mixed files and many small text files) into a layout, against the
 * same work done by standard tools in the same run —
 * `tar --sort=name -cf - DIR | gzip -1` and `| zstd -T0` — with wall time,
 * throughput and peak RSS of each side (ours from the process itself, the
 * peers' from /usr/bin/time, the largest process of the pipeline).
 * Section `image` of `npm run bench`.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeMixedFile, mib, rate, timed } from './util.js';

const LARGE_FILES = 96;
const LARGE_MIB = 8;
const SMALL_DIRS = 160;
const SMALL_PER_DIR = 100;
const SMALL_BYTES = 16 * 1024;

/** Writes the tree; returns its size in bytes. */
async function makeTree(root: string): Promise<number> {
  let total = 0;
  await mkdir(join(root, 'large'), { recursive: true });
  for (let i = 0; i < LARGE_FILES; i++) {
    await makeMixedFile(join(root, 'large', `f${i}.bin`), LARGE_MIB, i + 1);
    total += LARGE_MIB << 20;
  }
  const line = 'usr lib systemd network mount service config value=1\n';
  const small = Buffer.from(line.repeat(Math.ceil(SMALL_BYTES / line.length)).slice(0, SMALL_BYTES));
  for (let d = 0; d < SMALL_DIRS; d++) {
    const dir = join(root, 'small', `d${d}`);
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < SMALL_PER_DIR; f++) {
      small.write(`${d}-${f};`, 0); // every file differs
      await writeFile(join(dir, `f${f}.conf`), small);
      total += SMALL_BYTES;
    }
  }
  return total;
}

/** Wall time and peak RSS (bytes) of a shell pipeline under /usr/bin/time. */
function peer(script: string): { seconds: number; peakRss: number } {
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'sh', '-c', script], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`);
  return { seconds, peakRss: Number(r.stderr.trim().split('\n').pop()) * 1024 };
}

/** Runs the benchmark in `dir` (scratch space for ~2.5 GiB). */
export async function benchImage(dir: string): Promise<Record<string, unknown>> {
  const tree = join(dir, 'image-tree');
  await rm(tree, { recursive: true, force: true });
  const size = await makeTree(tree);
  const out: Record<string, unknown> = { tree: mib(size), files: LARGE_FILES + SMALL_DIRS * SMALL_PER_DIR };
  try {
    for (const [compression, peerCmd, level] of [
      ['gzip', 'gzip -1', '1'],
      ['zstd', 'zstd -q -T0', '3'],
    ] as const) {
      const layout = join(dir, `image-${compression}`);
      await rm(layout, { recursive: true, force: true });
      const ours = await timed(
        'oci-os',
        [
          'image',
          'build',
          '--rootfs',
          tree,
          '--layer-compression',
          compression,
          '--compression-level',
          level,
          '--source-date-epoch',
          '0',
          '--output',
          `oci:${layout}`,
        ],
        { node: true },
      );
      await rm(layout, { recursive: true, force: true });
      const theirs = peer(`tar --sort=name -C "${tree}" -cf - . | ${peerCmd} > "${join(dir, 'peer.out')}"`);
      await rm(join(dir, 'peer.out'), { force: true });
      out[compression] = {
        ociOsSeconds: +ours.seconds.toFixed(2),
        ociOsThroughput: rate(size, ours.seconds),
        ociOsPeakRss: mib(ours.peakRss!),
        peer: `tar --sort=name | ${peerCmd}`,
        peerSeconds: +theirs.seconds.toFixed(2),
        peerThroughput: rate(size, theirs.seconds),
        peerPeakRss: mib(theirs.peakRss),
        'time ratio (oci-os / peer)': +(ours.seconds / theirs.seconds).toFixed(2),
      };
    }
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  return out;
}
