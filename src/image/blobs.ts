/**
 * Copying a base image's blobs to where the new image goes: skipped when
 * the destination has them, mounted between repositories of one registry,
 * otherwise streamed from source to destination (hashed on both sides,
 * never held whole).
 */
import pLimit from 'p-limit';
import type { ContentStore } from '../content/store.js';
import type { Descriptor } from '../oci/descriptor.js';
import { RegistryRepository } from '../registry/repository.js';
import { fetchBlobResumable } from '../registry/fetch-resume.js';

/** What happened to one blob. */
export interface CopiedBlob {
  digest: string;
  size: number;
  status: 'uploaded' | 'exists' | 'mounted';
}

/** A source opened only when the destination starts reading it. */
function lazySource(src: ContentStore, desc: Descriptor, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      const stream = src instanceof RegistryRepository ? await fetchBlobResumable(src, desc, { signal }) : await src.fetch(desc);
      try {
        for await (const c of stream) yield c as Buffer;
      } finally {
        stream.destroy();
      }
    },
  };
}

/** Copies blobs (`jobs` at once, default 4). */
export async function copyBlobs(src: ContentStore, dst: ContentStore, descs: Descriptor[], options: { jobs?: number; signal?: AbortSignal } = {}): Promise<CopiedBlob[]> {
  const limit = pLimit(options.jobs ?? 4);
  const mountFrom = src instanceof RegistryRepository && dst instanceof RegistryRepository
    && src.reference.apiHost === dst.reference.apiHost && src.name !== dst.name ? src.name : undefined;
  const unique = [...new Map(descs.map((d) => [d.digest, d])).values()];
  return Promise.all(unique.map((desc) => limit(async (): Promise<CopiedBlob> => {
    options.signal?.throwIfAborted();
    if (await dst.exists(desc)) return { digest: desc.digest, size: desc.size, status: 'exists' };
    if (dst instanceof RegistryRepository) {
      const r = await dst.pushContent(desc, lazySource(src, desc, options.signal), {
        skipExistsCheck: true, mountFrom, signal: options.signal, reopen: () => lazySource(src, desc, options.signal),
      });
      return { digest: desc.digest, size: desc.size, status: r.status };
    }
    await dst.push(desc, lazySource(src, desc, options.signal));
    return { digest: desc.digest, size: desc.size, status: 'uploaded' };
  })));
}
