/**
 * Reading the documents of a graph: a manifest's verified bytes, the
 * descriptors a manifest or index references, the check that one digest is
 * always referenced with one size, and the artifactType a manifest names.
 * Shared by the graph copy and the graph verifier.
 */

import { fetchAll } from '../content/fetch-all.js';
import type { ContentStore } from '../content/store.js';
import { OciError } from '../errors.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/descriptor.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { isGraphManifestMediaType, isIndexMediaType, isManifestMediaType, MediaType } from '../oci/mediatypes.js';

/** Largest manifest or index copied (oci/limits.ts). */
export const defaultMaxManifestBytes = MAX_MANIFEST_BYTES;

/** Reads a manifest's verified bytes from a store, refusing ones over `cap`. */
export function readManifestBytes(store: ContentStore, desc: Descriptor, cap = defaultMaxManifestBytes): Promise<Buffer> {
  return fetchAll(store, desc, { cap, what: `manifest ${desc.digest}` });
}

/**
 * Checks that an index entry is a manifest this walk can copy. Index entries
 * are always manifests (image-spec "Image Index": `manifests`), so one of
 * unknown type is refused rather than guessed to be a blob: fetched from
 * `/blobs/` it is "not found", pushed there it leaves the index tagged with
 * a child no manifest request can reach. Attestations (buildx) are plain
 * image manifests and need nothing special.
 */
function checkIndexEntry(index: Descriptor, entry: Descriptor, i: number): Descriptor {
  if (entry.mediaType === MediaType.dockerSchema1Manifest || entry.mediaType === MediaType.dockerSchema1Signed) {
    throw new OciError(
      'UNSUPPORTED',
      `index ${index.digest}: manifests[${i}] (${entry.digest}) is a Docker schema 1 manifest (${entry.mediaType}), which oci-os does not copy`,
    );
  }
  if (!isGraphManifestMediaType(entry.mediaType)) {
    throw new OciError(
      'UNSUPPORTED',
      `index ${index.digest}: manifests[${i}] (${entry.digest}) has media type ${entry.mediaType}, which is not a manifest type oci-os knows`,
    );
  }
  return entry;
}

/** The descriptors a manifest or index references (not `subject`). */
export function childrenOf(desc: Descriptor, bytes: Buffer): { manifests: Descriptor[]; blobs: Descriptor[] } {
  let doc: Partial<ImageManifest & ImageIndex> & { blobs?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Partial<ImageManifest & ImageIndex>;
  } catch {
    throw new OciError('INVALID_FORMAT', `manifest ${desc.digest} is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null) throw new OciError('INVALID_FORMAT', `manifest ${desc.digest} is not a JSON object`);
  if (doc.mediaType !== undefined && doc.mediaType !== desc.mediaType) {
    throw new OciError('INVALID_FORMAT', `manifest ${desc.digest} says its media type is ${doc.mediaType}, but it was found as ${desc.mediaType}`);
  }
  const check = (d: unknown, where: string): Descriptor => {
    const x = d as Descriptor;
    if (!x || typeof x.digest !== 'string' || typeof x.mediaType !== 'string' || !Number.isSafeInteger(x.size) || x.size < 0) {
      throw new OciError('INVALID_FORMAT', `manifest ${desc.digest}: ${where} is not a valid descriptor`);
    }
    return x;
  };
  if (isIndexMediaType(desc.mediaType) || (!isGraphManifestMediaType(desc.mediaType) && Array.isArray(doc.manifests))) {
    if (!Array.isArray(doc.manifests)) throw new OciError('INVALID_FORMAT', `index ${desc.digest} has no manifests array`);
    return { manifests: doc.manifests.map((m, i) => checkIndexEntry(desc, check(m, `manifests[${i}]`), i)), blobs: [] };
  }
  if (desc.mediaType === MediaType.ociArtifactManifest) {
    // An artifact manifest has no config; what it references is in `blobs` (optional).
    if (doc.blobs === undefined) return { manifests: [], blobs: [] };
    if (!Array.isArray(doc.blobs)) throw new OciError('INVALID_FORMAT', `manifest ${desc.digest}: blobs is not an array`);
    return { manifests: [], blobs: doc.blobs.map((b, i) => check(b, `blobs[${i}]`)) };
  }
  const blobs: Descriptor[] = [];
  if (doc.config !== undefined) blobs.push(check(doc.config, 'config'));
  if (doc.layers !== undefined) {
    if (!Array.isArray(doc.layers)) throw new OciError('INVALID_FORMAT', `manifest ${desc.digest}: layers is not an array`);
    for (const [i, l] of doc.layers.entries()) blobs.push(check(l, `layers[${i}]`));
  }
  if (isManifestMediaType(desc.mediaType) && doc.config === undefined) {
    throw new OciError('INVALID_FORMAT', `manifest ${desc.digest} has no config`);
  }
  return { manifests: [], blobs };
}

/**
 * Remembers the size each digest was first referenced with, so a second
 * descriptor naming the same digest with another size is refused: only one
 * of them can be right, and a walk that copies or checks each digest once
 * would otherwise pass the wrong one along unnoticed.
 */
export class DescriptorSizes {
  private readonly sizes = new Map<string, { size: number; from: string }>();

  /** Records `desc` as referenced by `from`; false when the digest was seen before (with the same size). */
  add(desc: Descriptor, from: string): boolean {
    const first = this.sizes.get(desc.digest);
    if (!first) {
      this.sizes.set(desc.digest, { size: desc.size, from });
      return true;
    }
    if (first.size !== desc.size) {
      throw new OciError('INVALID_FORMAT', `${desc.digest} is ${first.size} bytes in ${first.from} but ${desc.size} bytes in ${from}`);
    }
    return false;
  }
}

/**
 * The `artifactType` a manifest names for itself, which a layout's
 * index.json lists for it unless a format has its own rule (the copy's
 * `indexArtifactType` hook).
 */
export function manifestArtifactType(bytes: Buffer): string | undefined {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as Partial<ImageManifest>;
    return typeof m.artifactType === 'string' ? m.artifactType : undefined;
  } catch {
    return undefined;
  }
}
