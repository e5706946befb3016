/**
 * Graph copy between any two ContentStores (layout, archive, registry):
 * a manifest with its config and layers, an index with every manifest it
 * lists (recursively), artifacts of any type — all copied verbatim, so every
 * digest stays the same. `subject` is not followed (a referrer is copied on
 * its own). Children are stored before their parents and the tags last, so
 * a tag never points at something incomplete.
 *
 * Blobs already at the destination are skipped; between two repositories
 * of the same registry blobs are mounted (distribution-spec "Mounting a
 * blob from another repository"); otherwise a blob streams from source to
 * destination with no temporary copy, hashed on both sides. (A registry
 * source resumes a broken download by itself.)
 */
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { OciError, InterruptedError } from '../errors.js';
import type { ContentStore } from '../content/store.js';
import type { ProgressSink } from '../progress/events.js';
import { isManifestReader, pushReported } from '../content/capabilities.js';
import { BlobCopier, type CopiedContent } from './blob.js';

export type { CopiedContent } from './blob.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/descriptor.js';
import { isGraphManifestMediaType, isIndexMediaType, isManifestMediaType, MediaType } from '../oci/mediatypes.js';
import { OS_IMAGE_ARTIFACT_TYPE } from '../osimage/format.js';

/** Largest manifest or index copied (the distribution-spec asks registries for at least 4 MiB). */
export const defaultMaxManifestBytes = 16 * 1024 * 1024;

/** Options of {@link copyGraph}. Zero values mean the defaults. */
export interface CopyOptions {
  /** Blobs (and manifest reads and writes) transferred at once (default 4). */
  jobs?: number;
  /** Tags to set at the destination once everything is stored. */
  tags?: string[];
  /** Largest manifest accepted (default 16 MiB). */
  maxManifestBytes?: number;
  signal?: AbortSignal;
  /**
   * Receives the copy's progress: blob-start, blob-progress and blob-done
   * for each blob transferred (blob-done alone for one already there), a
   * `manifest` event for each manifest or index at the destination.
   */
  progress?: ProgressSink;
  /** Called with a manifest's bytes after they were read and verified (e.g. to check an OS image). */
  onManifest?: (desc: Descriptor, bytes: Buffer) => void | Promise<void>;
}

/** What {@link copyGraph} did. */
export interface CopyResult {
  root: Descriptor;
  /** Every blob and manifest, in completion order (children before parents). */
  contents: CopiedContent[];
  /** Tags set, in order. */
  tags: string[];
  /** Bytes read from the source for transferred blobs. */
  bytesTransferred: number;
}

/** Reads a manifest's verified bytes from a store, refusing ones over `cap`. */
export async function readManifestBytes(store: ContentStore, desc: Descriptor, cap = defaultMaxManifestBytes): Promise<Buffer> {
  if (desc.size > cap) throw new OciError('SIZE_EXCEEDS_LIMIT', `manifest ${desc.digest} is ${desc.size} bytes, more than the ${cap} accepted`);
  if (isManifestReader(store)) return store.fetchManifestBytes(desc);
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of await store.fetch(desc)) {
    n += (c as Buffer).length;
    if (n > cap) throw new OciError('SIZE_EXCEEDS_LIMIT', `manifest ${desc.digest} is more than ${cap} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts, n);
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
    throw new OciError('UNSUPPORTED', `index ${index.digest}: manifests[${i}] (${entry.digest}) is a Docker schema 1 manifest (${entry.mediaType}), which oci-os does not copy`);
  }
  if (!isGraphManifestMediaType(entry.mediaType)) {
    throw new OciError('UNSUPPORTED', `index ${index.digest}: manifests[${i}] (${entry.digest}) has media type ${entry.mediaType}, which is not a manifest type oci-os knows`);
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
    doc.layers.forEach((l, i) => blobs.push(check(l, `layers[${i}]`)));
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
 * Copies the graph under `root` from `src` to `dst`, then sets `options.tags`.
 * Local destinations still need their commit() afterwards.
 */
export async function copyGraph(src: ContentStore, dst: ContentStore, root: Descriptor, options: CopyOptions = {}): Promise<CopyResult> {
  const limit = pLimit(options.jobs ?? 4);
  const cap = options.maxManifestBytes ?? defaultMaxManifestBytes;
  const contents: CopiedContent[] = [];
  const started = new Map<string, Promise<void>>();
  const sizes = new DescriptorSizes();
  let rootTagged: Descriptor = { mediaType: root.mediaType, digest: root.digest, size: root.size };

  const done = (r: CopiedContent): void => {
    contents.push(r);
    options.progress?.(r.kind === 'manifest'
      ? { type: 'manifest', digest: r.digest, mediaType: r.mediaType, size: r.size }
      : { type: 'blob-done', id: r.digest, name: r.digest.slice(7, 19), digest: r.digest, size: r.size, mediaType: r.mediaType, status: r.status, uploadedBytes: r.uploadedBytes ?? 0 });
  };
  // After the first failure nothing new starts, the transfers under way are stopped, and every one
  // is awaited before copyGraph rejects, so a caller's abort() cleans up after all of them. Stopped,
  // a download from a registry that hangs (or a long one) does not hold back the failure that
  // ends the copy anyway (no space left for the blob next to it).
  let firstError: unknown;
  const stopAll = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stopAll.signal]) : stopAll.signal;
  const fail = (err: unknown): void => {
    firstError ??= err;
    stopAll.abort();
  };
  const aborted = (): void => {
    if (options.signal?.aborted) throw new InterruptedError('copy interrupted; no tag was set');
    if (firstError !== undefined) throw new OciError('ABORTED', 'copy stopped after an earlier failure');
  };

  const copier = new BlobCopier(src, dst, {
    signal, interrupted: () => new InterruptedError('copy interrupted; no tag was set'),
    progress: options.progress,
  });
  const copyBlob = (desc: Descriptor): Promise<void> =>
    limit(async () => {
      aborted();
      done(await copier.copy(desc));
    });

  const copyNode = async (desc: Descriptor): Promise<void> => {
    // Manifest reads and writes take a slot of the same limit as blobs: an index
    // of hundreds of platforms would otherwise open a request per entry at once.
    // Only the requests hold a slot, never the wait for the children below
    // (which need slots themselves), so the walk cannot starve itself.
    const bytes = await limit(() => {
      aborted();
      return readManifestBytes(src, desc, cap);
    });
    await options.onManifest?.(desc, bytes);
    if (desc.digest === root.digest) {
      const artifactType = indexArtifactType(bytes);
      if (artifactType) rootTagged = { ...rootTagged, artifactType };
    }
    const { manifests, blobs } = childrenOf(desc, bytes);
    const from = `manifest ${desc.digest}`;
    const settled = await Promise.allSettled([...manifests.map((m) => visit(m, false, from)), ...blobs.map((b) => visit(b, true, from))]);
    if (settled.some((r) => r.status === 'rejected')) throw firstError;
    await limit(async () => {
      aborted();
      if (await dst.exists(desc)) {
        done({ digest: desc.digest, size: desc.size, mediaType: desc.mediaType, kind: 'manifest', status: 'exists' });
        return;
      }
      const r = await pushReported(dst, desc, Readable.from([bytes]));
      // A graph copy reports content stored locally as uploaded too (what its reports have always said).
      const uploadedBytes = r.status === 'written' ? undefined : r.uploadedBytes;
      done({ digest: desc.digest, size: desc.size, mediaType: desc.mediaType, kind: 'manifest', status: 'uploaded', uploadedBytes });
    });
  };

  /** Each digest is copied once, however often the graph references it (always with the same size). */
  const visit = (desc: Descriptor, blob = false, from = 'the root descriptor'): Promise<void> => {
    try {
      sizes.add(desc, from);
    } catch (err) {
      fail(err);
      return Promise.reject(err);
    }
    let p = started.get(desc.digest);
    if (!p) {
      p = (blob ? copyBlob(desc) : copyNode(desc)).catch((err: unknown) => {
        fail(err);
        throw err;
      });
      started.set(desc.digest, p);
    }
    return p;
  };

  if (!isManifestMediaType(root.mediaType) && !isIndexMediaType(root.mediaType)) {
    throw new OciError('UNSUPPORTED', `${root.digest} has media type ${root.mediaType}, which is neither an image manifest nor an index`);
  }
  try {
    await visit(root);
  } catch (err) {
    throw firstError ?? err;
  }
  const tags: string[] = [];
  for (const tag of options.tags ?? []) {
    aborted();
    await dst.tag(rootTagged, tag);
    tags.push(tag);
  }
  return { root, contents, tags, bytesTransferred: copier.bytesTransferred };
}

/**
 * The `artifactType` a layout's index.json gives a manifest: for OS images
 * the config media type, as the format's builder writes it
 * (osimage-format.md, "OCI image layout"); else the manifest's artifactType.
 */
function indexArtifactType(bytes: Buffer): string | undefined {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as Partial<ImageManifest>;
    if (m.artifactType === OS_IMAGE_ARTIFACT_TYPE) return m.config?.mediaType;
    return typeof m.artifactType === 'string' ? m.artifactType : undefined;
  } catch {
    return undefined;
  }
}
