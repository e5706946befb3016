/**
 * The one verified read of small content (manifests, indexes, configs)
 * into memory, as oras-go's FetchAll: refused before any byte is read when
 * the descriptor is over the cap, stopped as soon as more bytes than that
 * arrive, and checked against the descriptor's size and digest at the end
 * whatever the store did.
 */
import { createHash } from 'node:crypto';
import { OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { digestAlgorithm } from '../oci/digest.js';
import { isRegistryManifestMediaType } from '../oci/mediatypes.js';
import { isManifestReader, isWholeReader } from './capabilities.js';
import type { ContentStore } from './store.js';

/** Options of {@link fetchAll}. */
export interface FetchAllOptions {
  /** Largest size accepted, in bytes (oci/limits.ts has one per kind). */
  cap: number;
  /** What the content is, for messages (default `content <digest>`). */
  what?: string;
  signal?: AbortSignal;
}

/** SIZE_EXCEEDS_LIMIT when a descriptor says its content is larger than `cap`. */
export function checkCap(desc: Descriptor, cap: number, what: string): void {
  if (desc.size > cap) throw new OciError('SIZE_EXCEEDS_LIMIT', `${what} is ${desc.size} bytes, more than the ${cap} accepted`);
}

/** The verified bytes `desc` names in `store`; SIZE_EXCEEDS_LIMIT over the cap, SIZE_MISMATCH / DIGEST_MISMATCH when they are not the descriptor's. */
export async function fetchAll(store: ContentStore, desc: Descriptor, options: FetchAllOptions): Promise<Buffer> {
  const { cap } = options;
  const what = options.what ?? `content ${desc.digest}`;
  checkCap(desc, cap, what);
  let bytes: Buffer;
  // A store that reads manifests whole (and keeps those it has seen) is asked for them directly.
  if (isManifestReader(store) && isRegistryManifestMediaType(desc.mediaType)) bytes = await store.fetchManifestBytes(desc);
  else if (isWholeReader(store)) bytes = await store.readWhole(desc);
  else {
    const parts: Buffer[] = [];
    let n = 0;
    const stream = await store.fetch(desc, { signal: options.signal });
    try {
      for await (const c of stream) {
        n += (c as Buffer).length;
        if (n > cap) throw new OciError('SIZE_EXCEEDS_LIMIT', `${what} is more than the ${cap} bytes accepted`);
        parts.push(c as Buffer);
      }
    } finally {
      stream.destroy();
    }
    bytes = Buffer.concat(parts, n);
  }
  return checkBytes(desc, bytes, what);
}

/** `bytes`, once they are the content `desc` names: SIZE_MISMATCH / DIGEST_MISMATCH otherwise. */
export function checkBytes(desc: Descriptor, bytes: Buffer, what: string): Buffer {
  if (bytes.length !== desc.size) throw new OciError('SIZE_MISMATCH', `${what}: got ${bytes.length} bytes, the descriptor says ${desc.size}`);
  const actual = `${digestAlgorithm(desc.digest, what)}:${createHash(digestAlgorithm(desc.digest, what)).update(bytes).digest('hex')}`;
  if (actual !== desc.digest) throw new OciError('DIGEST_MISMATCH', `${what}: content has digest ${actual}`);
  return bytes;
}
