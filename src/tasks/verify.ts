/**
 * Verifying everything a manifest or index references: each blob re-hashed
 * as it streams from the store (stores fail the stream on a digest or size
 * mismatch), and for OS images every payload decompressed and checked
 * chunk by chunk against the config's hashes (osimage/reader.ts).
 */
import pLimit from 'p-limit';
import type { ContentStore } from '../content/store.js';
import { childrenOf, DescriptorSizes, readManifestBytes } from '../copy/graph.js';
import type { Descriptor } from '../oci/descriptor.js';
import { isGraphManifestMediaType, isManifestMediaType } from '../oci/mediatypes.js';
import { checkPayloadsFrom, type PayloadVerification, payloadsByBlob, verificationOf } from '../osimage/payload-reader.js';
import { isOsImageManifest, readOsImage } from '../osimage/reader.js';

/** Options of {@link verifyGraph}. Zero values mean the defaults. */
export interface VerifyOptions {
  /** Blobs and manifests checked at once (default 4). */
  jobs?: number;
  /** Re-hash blobs that are not OS image payloads (default true; a pull that just hashed them sets false). */
  blobs?: boolean;
  signal?: AbortSignal;
  /** A blob or payload was verified (each payload of a blob shared by identical payloads is reported). */
  onVerified?: (item: { digest: string; size: number; payload?: string }) => void;
}

/** What {@link verifyGraph} checked. */
export interface VerifyResult {
  root: Descriptor;
  manifests: number;
  /** Blobs re-hashed (payload blobs included). */
  blobs: number;
  /** Blob bytes read. */
  bytes: number;
  /** OS image payloads checked chunk by chunk. */
  payloads: Array<PayloadVerification & { manifest: string }>;
}

/** Drains a blob from the store; the store's stream fails unless digest and size match. */
async function rehash(store: ContentStore, desc: Descriptor): Promise<void> {
  const stream = await store.fetch(desc);
  for await (const _ of stream) {
    // Hashing happens in the store's stream.
  }
}

/** Verifies the graph under `root` in `store`; throws the first mismatch found. */
export async function verifyGraph(store: ContentStore, root: Descriptor, options: VerifyOptions = {}): Promise<VerifyResult> {
  const limit = pLimit(options.jobs ?? 4);
  const result: VerifyResult = { root, manifests: 0, blobs: 0, bytes: 0, payloads: [] };
  // Each digest is checked once, so a second descriptor with another size must be caught here.
  const seen = new DescriptorSizes();
  const checkBlobs = options.blobs ?? true;

  const visit = async (desc: Descriptor, from = 'the root descriptor'): Promise<void> => {
    if (!seen.add(desc, from)) return;
    if (!isGraphManifestMediaType(desc.mediaType)) {
      if (!checkBlobs) return;
      await limit(() => rehash(store, desc));
      result.blobs++;
      result.bytes += desc.size;
      options.onVerified?.({ digest: desc.digest, size: desc.size });
      return;
    }
    // Manifest reads take a slot of the same limit as blobs: an index of hundreds
    // of platforms would otherwise open a request per entry at once (as copyGraph).
    // Only the requests hold a slot, never the wait for the children below (which
    // need slots themselves), so the walk cannot starve itself.
    const { bytes, image } = await limit(async () => {
      const bytes = await readManifestBytes(store, desc);
      // An OS image's manifest and config are read (and checked) by its reader, in the same slot.
      const image = isManifestMediaType(desc.mediaType) && isOsImageManifest(bytes) ? await readOsImage(store, desc, bytes) : undefined;
      return { bytes, image };
    });
    result.manifests++;
    if (image) {
      seen.add(image.manifest.config, `manifest ${desc.digest}`);
      result.blobs++;
      result.bytes += image.manifest.config.size;
      for (const p of image.payloads) seen.add(p.layer, `manifest ${desc.digest}`);
      // Identical payloads share one blob: it is read (and counted) once, checked against each of them.
      await Promise.all(
        [...payloadsByBlob(image.payloads).values()].map((payloads) =>
          limit(async () => {
            const blob = await store.fetch(payloads[0]!.layer);
            try {
              await checkPayloadsFrom(blob, payloads, { signal: options.signal });
            } finally {
              blob.destroy();
            }
            result.blobs++;
            result.bytes += payloads[0]!.layer.size;
            for (const p of payloads) options.onVerified?.({ digest: p.layer.digest, size: p.layer.size, payload: p.name });
          }),
        ),
      );
      result.payloads.push(...image.payloads.map((p) => ({ ...verificationOf(p), manifest: desc.digest })));
      return;
    }
    const { manifests, blobs } = childrenOf(desc, bytes);
    await Promise.all([...manifests, ...blobs].map((d) => visit(d, `manifest ${desc.digest}`)));
  };

  await visit(root);
  return result;
}
