/**
 * Copying one blob between any two ContentStores, the single path every
 * blob copy takes (graph copies, base-image layers, kept component layers):
 * skipped when the destination has it, mounted when the destination can
 * take it from the source's repository, otherwise streamed from source to
 * destination with no temporary copy. The source is opened only when the
 * destination reads it (a mount never opens it); local sources are read from
 * any offset by an upload that starts again; every read stops with the
 * signal; the destination trusts the source's own digest check.
 */
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import pLimit from 'p-limit';
import { isReportingPusher, mountSource } from '../content/capabilities.js';
import type { ContentStore, StoppableSource } from '../content/store.js';
import type { Descriptor } from '../oci/descriptor.js';
import { Annotation } from '../oci/mediatypes.js';
import type { BlobStatus, ProgressSink } from '../progress/events.js';

/** What happened to one piece of content. */
export interface CopiedContent {
  digest: string;
  size: number;
  mediaType: string;
  /** `blob` (config, layer) or `manifest` (manifest or index). */
  kind: 'blob' | 'manifest';
  /** `uploaded` (bytes were written), `exists` (already there), `mounted` (cross-repository mount). */
  status: BlobStatus;
  /** Bytes sent to the destination, re-sent ones included, when the destination reports it (registries). */
  uploadedBytes?: number;
}

/** Options of {@link BlobCopier}. */
export interface BlobCopierOptions {
  /** Stops every read and upload under way. */
  signal: AbortSignal;
  /** The error a local read is stopped with when `signal` fires. */
  interrupted: () => Error;
  /** Receives blob-start and blob-progress events (blob-done is the caller's, once it has the result). */
  progress?: ProgressSink;
}

/** Counts bytes flowing through, for progress. */
class ByteCounter extends Transform {
  bytes = 0;
  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes(this.bytes);
    cb(null, chunk);
  }
}

/** Copies single blobs from `src` to `dst`; see the module comment. */
export class BlobCopier {
  /** Bytes read from the source for transferred blobs. */
  bytesTransferred = 0;
  private readonly mountFrom: string | undefined;

  constructor(
    private readonly src: ContentStore,
    private readonly dst: ContentStore,
    private readonly options: BlobCopierOptions,
  ) {
    this.mountFrom = mountSource(dst, src);
  }

  /** Copies one blob (unless the destination has it) and says what happened. */
  async copy(desc: Descriptor): Promise<CopiedContent> {
    const { dst, options } = this;
    const report = (status: CopiedContent['status'], uploadedBytes?: number): CopiedContent => ({
      digest: desc.digest,
      size: desc.size,
      mediaType: desc.mediaType,
      kind: 'blob',
      status,
      uploadedBytes,
    });
    if (await dst.exists(desc)) return report('exists');
    options.progress?.({ type: 'blob-start', id: desc.digest, name: desc.annotations?.[Annotation.title] ?? desc.digest.slice(7, 19), total: desc.size });
    if (isReportingPusher(dst)) {
      const fromOffset = this.readAt(desc);
      const r = await dst.pushContent(desc, this.lazySource(desc), {
        skipExistsCheck: true,
        mountFrom: this.mountFrom,
        signal: options.signal,
        reopen: () => this.lazySource(desc),
        readAt: fromOffset,
      });
      if (fromOffset && r.status === 'uploaded') this.bytesTransferred += desc.size;
      return report(r.status, r.uploadedBytes);
    }
    // The source verifies digest and size itself (fetch streams do), so the destination need not hash again.
    await dst.push(desc, this.lazySource(desc), { verifiedSource: true });
    return report('uploaded');
  }

  private progressed(desc: Descriptor, bytes: number): void {
    this.options.progress?.({ type: 'blob-progress', id: desc.digest, bytes, total: desc.size });
  }

  /**
   * Local reads know nothing of the signal (registry ones take it): without
   * this an interrupted copy between two layouts would run to the end of the
   * blob it is on, several hundred megabytes for an OS image payload.
   */
  private stopOnAbort(stream: Readable): Readable {
    const { signal } = this.options;
    const stop = (): void => {
      stream.destroy(this.options.interrupted());
    };
    if (signal.aborted) stop();
    else {
      signal.addEventListener('abort', stop, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', stop));
    }
    return stream;
  }

  /**
   * Reading a local blob from any offset, so an upload streams its chunks
   * straight from the file and reads again from where a registry stands
   * after a failure (the upload hashes and checks what it sends).
   */
  private readAt(desc: Descriptor): ((offset: number) => Promise<Readable>) | undefined {
    const src = this.src;
    if (!src.readBlobFrom) return undefined;
    return async (offset: number): Promise<Readable> => {
      const stream = this.stopOnAbort(await src.readBlobFrom!(desc, offset));
      const counter = new ByteCounter((n) => this.progressed(desc, offset + n));
      pipeline(stream, counter, () => undefined);
      return counter;
    };
  }

  /**
   * A source opened only when the destination reads it (a mount never
   * opens it), counted for progress as it is read. The fetched stream is
   * destroyed however the reading ends: a destination that stops reading
   * (a failed write) lets go of it, since a registry response left open and
   * unread would never end, closing the client waits for every response to
   * end, and the copy would never settle. A destination that stops while a
   * read waits (a stalled response) destroys it through `destroy()`.
   */
  private lazySource(desc: Descriptor): StoppableSource {
    const copier = this;
    // Aborts a fetch still waiting for its response, which destroying a stream not yet there cannot.
    const stopped = new AbortController();
    let stream: Readable | undefined;
    return {
      destroy() {
        stopped.abort();
        stream?.destroy();
      },
      async *[Symbol.asyncIterator]() {
        const signal = AbortSignal.any([copier.options.signal, stopped.signal]);
        stream = copier.stopOnAbort(await copier.src.fetch(desc, { signal }));
        if (stopped.signal.aborted) stream.destroy();
        let bytes = 0;
        try {
          for await (const c of stream) {
            bytes += (c as Buffer).length;
            copier.progressed(desc, bytes);
            yield c as Buffer;
          }
          copier.bytesTransferred += bytes;
        } finally {
          stream.destroy();
        }
      },
    };
  }
}

/** What happened to one blob of {@link copyBlobs}. */
export type CopiedBlob = Pick<CopiedContent, 'digest' | 'size' | 'status'>;

/**
 * Copies blobs (`jobs` at once, default 4), each digest once. The first
 * failure stops the rest: those waiting never start, those under way are
 * cancelled, and every one has ended before the failure is reported, so that
 * a caller that then aborts the destination does not do it while a blob is
 * still being written.
 */
export async function copyBlobs(
  src: ContentStore,
  dst: ContentStore,
  descs: Descriptor[],
  options: { jobs?: number; signal?: AbortSignal } = {},
): Promise<CopiedBlob[]> {
  const limit = pLimit(options.jobs ?? 4);
  const unique = [...new Map(descs.map((d) => [d.digest, d])).values()];
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const copier = new BlobCopier(src, dst, {
    signal,
    interrupted: () => (signal.reason instanceof Error ? signal.reason : new Error('blob copy stopped')),
  });
  let failed = false;
  let first: unknown;
  const settled = await Promise.allSettled(
    unique.map((desc) =>
      limit(async (): Promise<CopiedBlob> => {
        signal.throwIfAborted();
        const { digest, size, status } = await copier.copy(desc);
        return { digest, size, status };
      }).catch((err: unknown) => {
        if (!failed) {
          failed = true;
          first = err;
          stop.abort();
        }
        throw err;
      }),
    ),
  );
  if (failed) throw first;
  return settled.map((r) => (r as PromiseFulfilledResult<CopiedBlob>).value);
}
