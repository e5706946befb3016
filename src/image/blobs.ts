/**
 * Copying a base image's blobs to where the new image goes: skipped when
 * the destination has them, mounted between repositories of one registry,
 * otherwise streamed from source to destination (hashed on both sides,
 * never held whole).
 */
import pLimit from 'p-limit';
import type { ContentStore } from '../content/store.js';
import { isReportingPusher, mountSource } from '../content/capabilities.js';
import type { Descriptor } from '../oci/descriptor.js';

/** What happened to one blob. */
export interface CopiedBlob {
  digest: string;
  size: number;
  status: 'uploaded' | 'exists' | 'mounted';
}

/**
 * A source opened only when the destination starts reading it. Stopped by
 * `signal`: a registry download is cancelled, a local read destroyed.
 */
function lazySource(src: ContentStore, desc: Descriptor, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      signal?.throwIfAborted();
      const stream = await src.fetch(desc, { signal });
      const stop = (): void => { stream.destroy(signal?.reason instanceof Error ? signal.reason : new Error('blob copy stopped')); };
      if (signal?.aborted) stop();
      else signal?.addEventListener('abort', stop, { once: true });
      try {
        for await (const c of stream) yield c as Buffer;
      } finally {
        signal?.removeEventListener('abort', stop);
        stream.destroy();
      }
    },
  };
}

/**
 * Copies blobs (`jobs` at once, default 4). The first failure stops the
 * rest: those waiting never start, those under way are cancelled, and every
 * one has ended before the failure is reported, so that a caller that then
 * aborts the destination does not do it while a blob is still being written.
 */
export async function copyBlobs(src: ContentStore, dst: ContentStore, descs: Descriptor[], options: { jobs?: number; signal?: AbortSignal } = {}): Promise<CopiedBlob[]> {
  const limit = pLimit(options.jobs ?? 4);
  const mountFrom = mountSource(dst, src);
  const unique = [...new Map(descs.map((d) => [d.digest, d])).values()];
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  let failed = false;
  let first: unknown;
  const settled = await Promise.allSettled(unique.map((desc) => limit(async (): Promise<CopiedBlob> => {
    signal.throwIfAborted();
    if (await dst.exists(desc)) return { digest: desc.digest, size: desc.size, status: 'exists' };
    if (isReportingPusher(dst)) {
      const r = await dst.pushContent(desc, lazySource(src, desc, signal), {
        skipExistsCheck: true, mountFrom, signal, reopen: () => lazySource(src, desc, signal),
      });
      return { digest: desc.digest, size: desc.size, status: r.status };
    }
    await dst.push(desc, lazySource(src, desc, signal));
    return { digest: desc.digest, size: desc.size, status: 'uploaded' };
  }).catch((err: unknown) => {
    if (!failed) {
      failed = true;
      first = err;
      stop.abort();
    }
    throw err;
  })));
  if (failed) throw first;
  return settled.map((r) => (r as PromiseFulfilledResult<CopiedBlob>).value);
}
