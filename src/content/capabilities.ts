/**
 * Optional capabilities a {@link ContentStore} may have beyond the common
 * interface, asked for by what a store can do, never by what it is (as
 * oras-go v2 asks `if mounter, ok := dst.(Mounter)`). The registry client
 * has them all; local stores have none, and code written against these
 * guards works for any store that gains one.
 */
import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.js';
import type { BlobStatus } from '../progress/events.js';
import type { ByteSource, ContentStore, StoppableSource } from './store.js';

/** The stored bytes of a blob from an offset, for an upload that starts again from where its destination stands. */
export type ReadBlobAt = (offset: number) => ByteSource | Promise<ByteSource>;

/** Options of {@link ReportingPusher.pushContent}. */
export interface ReportingPushOptions {
  /** Repositories of the same store host to try to mount the blob from first (see {@link BlobMounter}). */
  mountFrom?: string | string[];
  /** Skip asking whether the content is there (the caller knows it is missing). */
  skipExistsCheck?: boolean;
  /** Produces the same bytes again from the start, for a store that must start over. */
  reopen?: () => ByteSource | Promise<ByteSource>;
  /** Reads the blob again from any offset (see {@link ReadBlobAt}). */
  readAt?: ReadBlobAt;
  signal?: AbortSignal;
}

/** What a store reports about content it was given. */
export interface PushOutcome {
  /** `uploaded` (bytes were sent), `written` (stored locally), `exists` (already there), `mounted` (taken from another repository). */
  status: BlobStatus;
  /** Bytes sent for it, re-sent ones included. */
  uploadedBytes: number;
}

/** A store that says what it did with content pushed to it (a registry: uploaded, found, or mounted). */
export interface ReportingPusher {
  pushContent(desc: Descriptor, content: ByteSource, options?: ReportingPushOptions): Promise<PushOutcome>;
}

/** A store that can take a blob from another store without its bytes passing through (a cross-repository mount). */
export interface BlobMounter {
  /** The repository to mount blobs of `src` from, or undefined when this store cannot mount from it. */
  mountSourceFor(src: ContentStore): string | undefined;
}

/** A store that reads (and may keep) a manifest's exact bytes itself, verified. */
export interface ManifestReader {
  fetchManifestBytes(desc: Descriptor): Promise<Buffer>;
}

/**
 * A store that reads small content (a manifest, a config) whole, at once,
 * unchecked: for a file, reads into one buffer instead of a stream to set
 * up, and fetchAll hashes the bytes once. Bytes past the descriptor's size
 * are read as far as one more, so that a longer file is told apart.
 */
export interface WholeReader {
  readWhole(desc: Descriptor): Promise<Buffer>;
}

/**
 * A store that stores a manifest and points a tag at it in one request: a
 * registry's `PUT /manifests/<tag>` stores the manifest as well, so a
 * manifest about to be tagged need not go to `/manifests/<digest>` first
 * (one round trip, two with the HEAD before it, fewer per push).
 */
export interface TaggingPusher {
  /** Stores `bytes`, the manifest `desc` names (checked against it), under `tag`. */
  pushTagged(desc: Descriptor, bytes: Buffer, tag: string): Promise<void>;
}

/** Whether a source can be destroyed (a stream, a {@link StoppableSource}). */
export function isStoppable(source: ByteSource): source is ByteSource & StoppableSource {
  return typeof (source as Partial<StoppableSource>).destroy === 'function';
}

/** Destroys a source that can be destroyed (see {@link isStoppable}): a read of it under way ends at once. */
export function destroySource(source: ByteSource): void {
  if (isStoppable(source)) source.destroy();
}

export function isReportingPusher(store: ContentStore): store is ContentStore & ReportingPusher {
  return typeof (store as Partial<ReportingPusher>).pushContent === 'function';
}

export function isMounter(store: ContentStore): store is ContentStore & BlobMounter {
  return typeof (store as Partial<BlobMounter>).mountSourceFor === 'function';
}

export function isWholeReader(store: ContentStore): store is ContentStore & WholeReader {
  return typeof (store as Partial<WholeReader>).readWhole === 'function';
}

export function isManifestReader(store: ContentStore): store is ContentStore & ManifestReader {
  return typeof (store as Partial<ManifestReader>).fetchManifestBytes === 'function';
}

export function isTaggingPusher(store: ContentStore): store is ContentStore & TaggingPusher {
  return typeof (store as Partial<TaggingPusher>).pushTagged === 'function';
}

/** The repository `dst` can mount blobs of `src` from, if any. */
export function mountSource(dst: ContentStore, src: ContentStore): string | undefined {
  return isMounter(dst) ? dst.mountSourceFor(src) : undefined;
}

/**
 * Pushes content and says what happened: what a {@link ReportingPusher}
 * reports, else `written` (a local store wrote the bytes).
 */
export async function pushReported(
  store: ContentStore,
  desc: Descriptor,
  content: ByteSource,
  options: ReportingPushOptions & { verifiedSource?: boolean } = {},
): Promise<PushOutcome> {
  if (isReportingPusher(store)) {
    const { verifiedSource: _, ...rest } = options;
    return store.pushContent(desc, content, rest);
  }
  await store.push(desc, content, { verifiedSource: options.verifiedSource });
  return { status: 'written', uploadedBytes: 0 };
}

/** Options of {@link pushManifestTagged}. */
export interface ManifestTagOptions {
  /** Checked before each tag: an interrupted push sets no further tag. */
  signal?: AbortSignal;
  /** Called once the manifest is stored (before its first tag is reported). */
  onStored?: () => void;
  /** Called after each tag is set. */
  onTag?: (tag: string) => void;
}

/**
 * Stores a manifest whose children are all stored, then points `tags` at it,
 * one after the other. A {@link TaggingPusher} stores it by the first tag's
 * request; any other store stores it first by itself.
 */
export async function pushManifestTagged(
  store: ContentStore,
  desc: Descriptor,
  bytes: Buffer,
  tags: readonly string[],
  options: ManifestTagOptions = {},
): Promise<void> {
  const [first, ...rest] = tags;
  const { signal, onStored, onTag } = options;
  signal?.throwIfAborted();
  if (first !== undefined && isTaggingPusher(store)) await store.pushTagged(desc, bytes, first);
  else {
    await store.push(desc, Readable.from([bytes]));
    if (first !== undefined) {
      signal?.throwIfAborted();
      await store.tag(desc, first);
    }
  }
  onStored?.();
  if (first === undefined) return;
  onTag?.(first);
  for (const tag of rest) {
    signal?.throwIfAborted();
    await store.tag(desc, tag);
    onTag?.(tag);
  }
}
