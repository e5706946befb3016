/**
 * Build benchmark: `oci-os build` of a mixed payload into a layout, against
 * the same work done by standard tools in the same run — hash the input
 * (sha256sum) while `zstd -3 -T0` compresses it and the output is hashed
 * (sha256sum) and written.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mib, rate, timed } from './util.js';

export async function benchBuild(dir: string, payload: string, size: number): Promise<Record<string, unknown>> {
  const out = join(dir, 'layout');
  await rm(out, { recursive: true, force: true });
  const ours = await timed('oci-os', ['build', '-p', `system=${payload}`, '-o', `oci:${out}:bench`], { node: true });
  await rm(out, { recursive: true, force: true });
  const peer = await timed('sh', [
    '-c',
    `sha256sum "${payload}" >/dev/null & zstd -q -3 -T0 -c "${payload}" | tee "${join(dir, 'peer.zst')}" | sha256sum >/dev/null; wait`,
  ]);
  await rm(join(dir, 'peer.zst'), { force: true });
  return {
    payload: mib(size),
    ociOsSeconds: +ours.seconds.toFixed(2),
    ociOsThroughput: rate(size, ours.seconds),
    ociOsPeakRss: mib(ours.peakRss!),
    peerSeconds: +peer.seconds.toFixed(2),
    peerThroughput: rate(size, peer.seconds),
    'time ratio (oci-os / zstd -T0 + sha256sum)': +(ours.seconds / peer.seconds).toFixed(2),
  };
}
