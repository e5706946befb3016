/**
 * Copying between two location strings (`copy`, `pull`): open both ends
 * (copy/locations.ts), copy the graph (copy/graph.ts), check OS images'
 * manifest and config (and, when asked, every chunk) before a local
 * destination is committed (osimage/chunk-checking-store.ts, verify.ts),
 * set the tag last.
 * On any failure a local destination is left as it was.
 */

import type { ContentStore } from '../content/store.js';
import { type CopyOptions, type CopyResult, readManifestBytes } from '../copy/graph.js';
import {
  type LocationKind,
  openLocationForReading,
  openLocationForWriting,
  parseLocation,
  type ReadableLocation,
  type WritableLocation,
  writeAndSettle,
} from '../copy/locations.js';
import { InterruptedError, OciError } from '../errors.js';
import type { Descriptor, Platform } from '../oci/descriptor.js';
import { MediaType } from '../oci/mediatypes.js';
import { ChunkCheckingStore } from '../osimage/chunk-checking-store.js';
import { isOsImageManifest, type OsImage, readOsImage } from '../osimage/reader.js';
import type { RegistryClient } from '../registry/client.js';
import { copyGraph } from './copy-graph.js';
import { selectRoot } from './select-root.js';
import { type VerifyResult, verifyGraph } from './verify.js';

/** Options of {@link transfer}. Zero values mean the defaults. */
export interface TransferOptions extends Pick<CopyOptions, 'jobs' | 'signal' | 'progress'> {
  /** Registry client shared by both ends (one with default options is made otherwise). */
  client?: RegistryClient;
  /** Only these source kinds are accepted (e.g. `pull` takes registries only). */
  sourceKinds?: LocationKind[];
  /** Only these destination kinds are accepted (e.g. `pull` writes local locations only). */
  destinationKinds?: LocationKind[];
  /**
   * Check every chunk of every OS image payload before a local destination
   * is committed (`--verify-chunks`; default false). Without it a copy
   * checks what every OCI client checks, the digest and size of every blob
   * and manifest as they stream, and an OS image's manifest and config;
   * decoding and hashing every chunk is left to `verify` and `extract`.
   * Registry destinations are not read back.
   */
  verifyOsImages?: boolean;
  /** Copy only the image for this platform when the source is an index (select-root.ts); a single image must match it. */
  platform?: Platform;
}

/** What {@link transfer} did. */
export interface TransferResult extends CopyResult {
  source: string;
  destination: string;
  /** Chunk checks done before commit (local destinations). */
  verification?: VerifyResult;
}

const kindNames: Record<LocationKind, string> = { registry: 'a registry reference', oci: 'oci:DIR[:TAG]', 'oci-archive': 'oci-archive:FILE[:TAG]' };

function checkKind(input: string, kinds: LocationKind[] | undefined, role: string): void {
  if (!kinds) return;
  const kind = parseLocation(input).kind;
  if (!kinds.includes(kind)) {
    throw new OciError('USAGE', `${role} "${input}" must be ${kinds.map((k) => kindNames[k]).join(' or ')}`);
  }
}

/** Copies what `source` names to `destination`, tag last; see the module comment. */
export async function transfer(source: string, destination: string, options: TransferOptions = {}): Promise<TransferResult> {
  // Both strings are checked before anything is opened, so a typo in DEST costs no download.
  parseLocation(source);
  parseLocation(destination);
  checkKind(source, options.sourceKinds, 'source');
  checkKind(destination, options.destinationKinds, 'destination');
  // The signal also stops the unpacking of an oci-archive source, and every local blob read below.
  const src = await openLocationForReading(source, { client: options.client, signal: options.signal });
  try {
    if (options.signal?.aborted) throw new InterruptedError('copy interrupted; no tag was set');
    // One platform of an index is copied as a plain manifest: the index itself stays behind.
    const root = options.platform ? (await selectRoot(src.store, src.root, options.platform, src.location)).root : src.root;
    const dst = await openLocationForWriting(destination, { client: options.client, signal: options.signal });
    return await writeAndSettle(dst, () => copyTo(src, root, dst, options));
  } finally {
    await src.close();
  }
}

/**
 * Copies `root` of `src` to `dst`; a local destination is checked then,
 * before the caller commits it.
 */
async function copyTo(src: ReadableLocation, root: Descriptor, dst: WritableLocation, options: TransferOptions): Promise<TransferResult> {
  if (dst.digest && dst.digest !== root.digest) {
    throw new OciError('DIGEST_MISMATCH', `destination names ${dst.digest}, but the source is ${root.digest}`);
  }
  const verify = dst.kind !== 'registry' && (options.verifyOsImages ?? false);
  const image = await osImageRoot(src.store, root);
  // Verifying, an OS image's payloads are checked chunk by chunk as they are written (no second
  // read); anything else is checked after the copy.
  const checking = verify && image ? new ChunkCheckingStore(dst.store, image.payloads) : undefined;
  const result = await copyGraph(src.store, checking ?? dst.store, root, {
    jobs: options.jobs,
    signal: options.signal,
    progress: options.progress,
    // Layout tags only become visible on commit(), after the chunk checks below.
    tags: dst.tag ? [dst.tag] : [],
  });
  let verification: VerifyResult | undefined;
  if (dst.kind !== 'registry') {
    if (checking?.complete) {
      verification = {
        // A blob shared by identical payloads was read once.
        root,
        manifests: 1,
        blobs: checking.verified.size,
        bytes: checking.checkedBytes,
        payloads: checking.results().map((v) => ({ ...v, manifest: root.digest })),
      };
    } else if (verify) {
      verification = await verifyGraph(dst.store, root, { jobs: options.jobs, blobs: false, signal: options.signal });
    }
    // An interrupt that came after the last blob still leaves the destination as it was.
    if (options.signal?.aborted) throw new InterruptedError('copy interrupted; no tag was set');
  }
  return { ...result, source: src.location, destination: dst.location, verification };
}

/** An OS image root, its manifest and config checked as its reader checks them (no payload is read); undefined for any other root. */
async function osImageRoot(src: ContentStore, root: Descriptor): Promise<OsImage | undefined> {
  if (root.mediaType !== MediaType.ociManifest) return undefined;
  const bytes = await readManifestBytes(src, root);
  return isOsImageManifest(bytes) ? readOsImage(src, root, bytes) : undefined;
}
