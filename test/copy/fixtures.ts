/**
 * Test content built by hand: container images (config + gzip tar layers),
 * multi-arch indexes and arbitrary artifacts, written into OCI layouts
 * through the layout store.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { ForwardingStore } from '../../src/content/forwarding-store.js';
import { type CopyResult, copyGraph } from '../../src/copy/graph.js';
import { openLocationForReading, openLocationForWriting } from '../../src/copy/locations.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { isGraphManifestMediaType, MediaType } from '../../src/oci/mediatypes.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { pseudoRandom } from '../helpers/cli.js';

export const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
export const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** A tar archive of the given files (deterministic headers). */
export async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    parts.push(c as Buffer);
  });
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const [name, data] of Object.entries(files)) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? reject(e) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

/** Content to store: descriptor + bytes. */
export interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}

function blob(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Blob {
  return { desc: { mediaType, digest: sha(bytes), size: bytes.length, ...extra }, bytes };
}

/** A container image: config + gzip tar layers + manifest (not stored yet). */
export async function containerImage(
  arch: string,
  opts: { layers?: number; layerSize?: number; seed?: number } = {},
): Promise<{ manifest: Blob; blobs: Blob[] }> {
  const layers: Blob[] = [];
  const seed = opts.seed ?? 1;
  for (let i = 0; i < (opts.layers ?? 2); i++) {
    const t = await tarOf({
      [`layer${i}/data-${arch}.bin`]: pseudoRandom(opts.layerSize ?? 200_000, seed * 100 + i + arch.length, true),
      [`layer${i}/README`]: Buffer.from(`layer ${i} for ${arch}\n`),
    });
    layers.push(blob(MediaType.ociLayerGzip, gzipSync(t)));
  }
  const diffIds: string[] = [];
  for (const l of layers) diffIds.push(sha(gunzipSync(l.bytes)));
  const config = blob(
    MediaType.ociConfig,
    json({
      created: '2025-01-01T00:00:00Z',
      architecture: arch,
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map((_, i) => ({ created: '2025-01-01T00:00:00Z', created_by: `layer ${i}` })),
    }),
  );
  const manifest = blob(
    MediaType.ociManifest,
    json({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: config.desc,
      layers: layers.map((l) => l.desc),
    }),
  );
  return { manifest, blobs: [config, ...layers] };
}

/** A multi-arch index over container images for `arches` (not stored yet). */
export async function multiArchIndex(arches: string[], opts: { layerSize?: number } = {}): Promise<{ index: Blob; manifests: Blob[]; blobs: Blob[] }> {
  const manifests: Blob[] = [];
  const blobs: Blob[] = [];
  for (const arch of arches) {
    const img = await containerImage(arch, { layerSize: opts.layerSize });
    manifests.push(img.manifest);
    blobs.push(...img.blobs);
  }
  const index = blob(
    MediaType.ociIndex,
    json({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: manifests.map((m, i) => ({ ...m.desc, platform: { architecture: arches[i], os: 'linux' } })),
    }),
  );
  return { index, manifests, blobs };
}

/** Stores blobs and manifests in a layout directory and tags `root`. */
export async function writeLayout(dir: string, root: Blob, others: Blob[], tag: string): Promise<void> {
  const layout = await OciLayout.open(dir, { create: true });
  for (const b of [...others, root]) await layout.push({ mediaType: b.desc.mediaType, digest: b.desc.digest, size: b.desc.size }, Readable.from([b.bytes]));
  await layout.tag(root.desc, tag);
  await layout.commit();
}

/** A blob of `bytes` with its descriptor. */
export const blobOf = (mediaType: string, bytes: Buffer): Blob => ({ desc: { mediaType, digest: sha(bytes), size: bytes.length }, bytes });
/** An OCI image index of `manifests`. */
export const indexOf = (manifests: Descriptor[]): Blob => blobOf(MediaType.ociIndex, json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
/** An OCI artifact manifest of `artifactType` referencing `blobs`. */
export const artifactManifestOf = (artifactType: string, blobs: Descriptor[]): Blob =>
  blobOf(MediaType.ociArtifactManifest, json({ mediaType: MediaType.ociArtifactManifest, artifactType, blobs }));

/** How many calls are running, and the most that ever ran at once. */
export class Gauge {
  now = 0;
  peak = 0;
  enter(): void {
    this.now++;
    this.peak = Math.max(this.peak, this.now);
  }
  leave(): void {
    this.now--;
  }
}

/**
 * A store that hands everything to `inner` and counts the manifest reads in
 * flight, and how often each manifest was read. Each read is held a little,
 * so that reads started together do overlap.
 */
export class ManifestReadCounter extends ForwardingStore {
  readonly reads = new Gauge();
  /** Reads, by manifest digest. */
  readonly readCount = new Map<string, number>();

  override async fetch(desc: Descriptor): Promise<Readable> {
    if (!isGraphManifestMediaType(desc.mediaType)) return this.inner.fetch(desc);
    this.readCount.set(desc.digest, (this.readCount.get(desc.digest) ?? 0) + 1);
    this.reads.enter();
    let left = false;
    const leave = (): void => {
      if (!left) this.reads.leave();
      left = true;
    };
    try {
      await sleep(5);
      const stream = await this.inner.fetch(desc);
      // The read is over once the stream ended (the reader has every byte), failed or closed.
      for (const ev of ['end', 'error', 'close']) stream.once(ev, leave);
      return stream;
    } catch (err) {
      leave();
      throw err;
    }
  }
}

/** Copies what `src` names to `dst` (location strings) with copyGraph, committing or aborting the destination. */
export async function copyLocations(src: string, dst: string, client?: RegistryClient, jobs?: number): Promise<CopyResult> {
  const s = await openLocationForReading(src, { client });
  const d = await openLocationForWriting(dst, { client });
  try {
    const r = await copyGraph(s.store, d.store, s.root, { tags: d.tag ? [d.tag] : [], jobs });
    await d.commit();
    return r;
  } catch (err) {
    await d.abort();
    throw err;
  } finally {
    await s.close();
    await d.close();
  }
}
