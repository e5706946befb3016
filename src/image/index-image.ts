/**
 * Combining per-platform images into one image index (image-spec
 * image-index.md): each source's manifest (or every manifest of a source
 * that is itself an index) is copied with its config and layers, and
 * listed with the platform its config declares. Attestation manifests of
 * a source index (what buildx adds beside each image: provenance and SBOMs
 * as in-toto layers, platform unknown/unknown) are not images: they are
 * copied and listed exactly as the source lists them, annotations included,
 * so `vnd.docker.reference.digest` still names their image, and take no
 * platform. The index is stored last, then tagged; a local destination is
 * committed at the end.
 */
import { Readable } from 'node:stream';
import { OciError, InterruptedError } from '../errors.js';
import type { Descriptor, ImageIndex } from '../oci/descriptor.js';
import { sha256Digest } from '../oci/digest.js';
import { canonicalJson, jsonMap } from '../oci/json.js';
import { MediaType, isIndexMediaType, isManifestMediaType } from '../oci/mediatypes.js';
import { copyGraph, readManifestBytes } from '../copy/graph.js';
import { openLocationForReading, openLocationForWriting, parseLocation, type LocationOptions } from '../copy/locations.js';
import { configPlatform } from './config.js';
import { formatPlatform } from './platform.js';
import { isAttestation } from './platform-select.js';
import { readImage } from './source.js';

/** Options of {@link buildIndexTo}. */
export interface IndexBuildOptions {
  /** Index annotations. */
  annotations?: Record<string, string>;
  /** Blobs copied at once per source (default 4). */
  jobs?: number;
  signal?: AbortSignal;
}

/** What {@link buildIndexTo} wrote. */
export interface IndexBuildReport {
  index: Buffer;
  descriptor: Descriptor;
  /** The index's entries, each with the source it came from. */
  manifests: Array<Descriptor & { source: string }>;
  output: string;
  tag?: string;
}

function platformEntry(desc: Descriptor, platform: NonNullable<Descriptor['platform']>): Descriptor {
  return { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, platform };
}

/** Builds an index of the images at `sources` into `dest`. */
export async function buildIndexTo(dest: string, sources: string[], options: IndexBuildOptions = {}, locations: LocationOptions = {}): Promise<IndexBuildReport> {
  if (sources.length === 0) throw new OciError('USAGE', 'no images given: name at least one SRC image');
  const parsed = parseLocation(dest);
  if (parsed.kind === 'registry' && parsed.digest && !parsed.tag) {
    throw new OciError('INVALID_REFERENCE', `${dest}: an index has no digest before it is built; push to a tag (REPO:TAG)`);
  }
  const out = await openLocationForWriting(dest, locations);
  try {
    const entries: Array<Descriptor & { source: string }> = [];
    const seen = new Map<string, string>();
    for (const src of sources) {
      const loc = await openLocationForReading(src, locations);
      try {
        const children: Descriptor[] = [];
        // Carried over verbatim after the images: not read as images, not counted as platforms.
        const attestations: Descriptor[] = [];
        if (isIndexMediaType(loc.root.mediaType)) {
          const index = JSON.parse((await readManifestBytes(loc.store, loc.root)).toString('utf8')) as ImageIndex;
          for (const m of index.manifests ?? []) {
            if (!isManifestMediaType(m.mediaType)) continue;
            if (isAttestation(m)) {
              attestations.push(m);
              continue;
            }
            const image = await readImage(loc.store, m, `${src} (${m.digest})`);
            children.push(platformEntry(m, m.platform ?? configPlatform(image.config)));
          }
        } else {
          const image = await readImage(loc.store, loc.root, src);
          children.push(platformEntry(loc.root, configPlatform(image.config)));
        }
        for (const child of children) {
          if (entries.some((e) => e.digest === child.digest)) continue;
          const key = formatPlatform(child.platform!);
          const other = seen.get(key);
          if (other) throw new OciError('INVALID_ARGUMENT', `${src} and ${other} are both images for ${key}; an index holds one image per platform`);
          seen.set(key, src);
          await copyGraph(loc.store, out.store, { mediaType: child.mediaType, digest: child.digest, size: child.size }, { jobs: options.jobs, signal: options.signal });
          entries.push({ ...child, source: src });
        }
        for (const att of attestations) {
          // The same source named twice; one attestation listed for two images stays listed twice.
          const about = att.annotations?.['vnd.docker.reference.digest'];
          if (entries.some((e) => e.digest === att.digest && e.annotations?.['vnd.docker.reference.digest'] === about)) continue;
          await copyGraph(loc.store, out.store, { mediaType: att.mediaType, digest: att.digest, size: att.size }, { jobs: options.jobs, signal: options.signal });
          entries.push({ ...att, source: src });
        }
      } finally {
        await loc.close();
      }
    }
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: entries.map(({ source: _, ...d }) => d),
    };
    if (options.annotations && Object.keys(options.annotations).length > 0) index.annotations = jsonMap(options.annotations);
    const bytes = canonicalJson(index);
    const descriptor: Descriptor = { mediaType: MediaType.ociIndex, digest: sha256Digest(bytes), size: bytes.length };
    options.signal?.throwIfAborted();
    await out.store.push(descriptor, Readable.from([bytes]));
    if (out.tag) await out.store.tag(descriptor, out.tag);
    await out.commit();
    return { index: bytes, descriptor, manifests: entries, output: out.location, tag: out.tag };
  } catch (err) {
    await out.abort();
    if (options.signal?.aborted) throw new InterruptedError('index aborted', { cause: err });
    throw err;
  } finally {
    await out.close();
  }
}
