import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.js';

/**
 * Bytes as they flow between stores: a Node.js stream or any async iterable
 * of byte chunks. A source that has a `destroy()` (a stream has one) is
 * destroyed by a store that stops reading it early, which ends a read of it
 * under way: an async generator cannot be stopped while it waits, so one
 * that reads a network response should come with a `destroy()` that
 * destroys the response.
 */
export type ByteSource = Readable | AsyncIterable<Uint8Array> | StoppableSource;

/** An async iterable that can be stopped while a read of it is under way (see {@link ByteSource}). */
export interface StoppableSource extends AsyncIterable<Uint8Array> {
  destroy(): void;
}

/** What a store learned about a blob it stored from a stream of unknown digest. */
export interface StoredBlob {
  digest: string;
  size: number;
  /** Bytes sent over the network for it, re-sent ones included (registries only). */
  uploadedBytes?: number;
  /** `uploaded` when the bytes went over the network; stores that write locally leave it out (`written`). */
  status?: 'uploaded' | 'written';
}

/** Options of ContentStore.pushStream. */
export interface PushStreamOptions {
  mediaType: string;
  /**
   * Produces the same bytes again from the start. Stores that may need to
   * start over (a registry that dropped an upload session, or that only
   * takes whole blobs of known digest) use it; others ignore it.
   */
  reopen?: () => ByteSource | Promise<ByteSource>;
  signal?: AbortSignal;
}

/** Options of ContentStore.fetch. */
export interface FetchOptions {
  /** Stops a remote download; local stores may ignore it (the caller then destroys the stream). */
  signal?: AbortSignal;
}

/** Options of ContentStore.push. */
export interface PushOptions {
  /**
   * The content checks itself: iterating it fails, before its end, unless
   * its bytes have the descriptor's digest and size (a store's fetch()
   * stream does). A store may then skip hashing it a second time.
   */
  verifiedSource?: boolean;
}

/**
 * One storage interface implemented by the OCI layout, the archive writer and
 * the registry client, so that build, push and copy are written once for any
 * pair of places. Manifests and indexes are told apart from blobs by their
 * media type (registries keep them on different endpoints; layouts do not).
 */
export interface ContentStore {
  /** Whether the content a descriptor names is present. */
  exists(desc: Descriptor): Promise<boolean>;
  /**
   * The content a descriptor names, as a stream. Implementations verify the
   * digest and size while streaming and fail the stream on a mismatch.
   */
  fetch(desc: Descriptor, options?: FetchOptions): Promise<Readable>;
  /**
   * The stored bytes of a blob from `offset` to its end, not verified: for a
   * reader that hashes them itself, such as an upload that reads a blob again
   * from wherever the registry stands after a failure. Local stores have it.
   */
  readBlobFrom?(desc: Descriptor, offset: number): Promise<Readable>;
  /** Stores content whose descriptor is known; verifies digest and size (or trusts a {@link PushOptions.verifiedSource}). */
  push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void>;
  /**
   * Stores a blob whose digest is only known once the stream has ended
   * (a payload compressed while it is read). Returns its digest and size.
   */
  pushStream(content: ByteSource, options: PushStreamOptions): Promise<StoredBlob>;
  /** The descriptor of the manifest a tag (or digest) names. */
  resolve(reference: string): Promise<Descriptor>;
  /** Points a tag at a manifest that is already stored. */
  tag(desc: Descriptor, tag: string): Promise<void>;
}

/** A ContentStore that can be finished (a layout whose index is written last, an archive that is tarred). */
export interface CommittableStore extends ContentStore {
  /** Makes everything pushed and tagged visible; nothing is visible before. */
  commit(): Promise<void>;
  /** Drops whatever was not committed. */
  abort(): Promise<void>;
}
