/**
 * One layer from a directory or a tar file, streamed in one pass:
 * entries → tar bytes → SHA-256 (the DiffID) → compression → the store's
 * pushStream, which hashes what it stores (the layer digest). No layer is
 * ever held in memory.
 */
import { stat } from 'node:fs/promises';
import type { ContentStore } from '../content/store.js';
import { fsError, InterruptedError, OciError } from '../errors.js';
import { Sha256Counter } from '../oci/digest.js';
import { BufferPool } from '../util/buffer-pool.js';
import { GcPacer } from '../util/gc.js';
import { type CompressionOptions, compressLayer, layerMediaType, resolveCompression, ZSTD_FRAME, zstdFrames } from './compress.js';
import type { NormalizeOptions } from './normalize.js';
import { tarFrames } from './tar/frames.js';
import { readTarInput } from './tar/input.js';
import { type EntryWithContent, writeTar } from './tar/writer.js';
import { type LeftOutPath, walkTree } from './tree.js';

/** A layer as stored. */
export interface BuiltLayer {
  /** Digest of the stored (compressed) blob. */
  digest: string;
  /** Size of the stored blob. */
  size: number;
  /** SHA-256 of the uncompressed tar (config `rootfs.diff_ids`). */
  diffID: string;
  mediaType: string;
  /** Uncompressed tar size. */
  tarSize: number;
  /** The directory or tar file it was made from. */
  source: string;
}

/** Options for building layers. */
export interface LayerBuildOptions extends CompressionOptions {
  normalize?: NormalizeOptions;
  /** Stops between two pieces with ABORTED. */
  signal?: AbortSignal;
  /** Receives warnings (e.g. xattrs that could not be kept). */
  warnings?: string[];
  /** Paths being written (the destination), left out of directory layers. */
  leaveOut?: LeftOutPath[];
}

/** Checks a layer path before any work starts; returns whether it is a directory. */
export async function checkLayerPath(path: string): Promise<'directory' | 'tar'> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw fsError(err, path, 'read');
  }
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'tar';
  throw new OciError('INVALID_ARGUMENT', `${path} is neither a directory nor a tar file`);
}

/** The normalized entries of a directory or tar file. */
export async function* layerEntries(path: string, options: LayerBuildOptions = {}): AsyncGenerator<EntryWithContent> {
  if ((await checkLayerPath(path)) === 'directory') yield* walkTree(path, { ...options.normalize, leaveOut: options.leaveOut }, options.warnings);
  else yield* readTarInput(path, options.normalize, options.warnings);
}

async function* hashed(source: AsyncIterable<Buffer>, counter: Sha256Counter, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    if (signal?.aborted) throw new InterruptedError('build aborted');
    counter.update(chunk);
    yield chunk;
  }
}

/** Passes chunks through, counting them for the collector pacing (see util/gc.ts). */
async function* paced(source: AsyncIterable<Buffer>, pacer: GcPacer): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    pacer.add(chunk.length);
    yield chunk;
  }
}

/** The tar bytes of a layer, uncompressed. */
export function layerTar(path: string, options: LayerBuildOptions = {}): AsyncGenerator<Buffer> {
  return writeTar(layerEntries(path, options));
}

/** Only the DiffID and tar size of a layer (one read, nothing stored). */
export async function layerDiffId(path: string, options: LayerBuildOptions = {}): Promise<{ diffID: string; tarSize: number }> {
  const counter = new Sha256Counter();
  for await (const _ of hashed(layerTar(path, options), counter, options.signal)) {
    // hashing is the work
  }
  return { diffID: counter.digest(), tarSize: counter.size };
}

/** Builds a layer and stores it with `store.pushStream`. */
export function pushLayer(store: ContentStore, path: string, options: LayerBuildOptions = {}): Promise<BuiltLayer> {
  return pushEntries(store, () => layerEntries(path, options), path, options);
}

/** zstd frame buffers, compression and collector pacing shared by layers written at once (layering/frame-budget.ts). */
export interface ZstdShare {
  pool: BufferPool;
  pacer: GcPacer;
  /** zstd frames of tar frames taken from `pool`, in order. */
  compress(tar: AsyncIterable<Buffer>, level: number): AsyncIterable<Buffer>;
}

/** How {@link pushEntries} streams a layer beyond the options every layer takes. */
export interface EntriesStreamOptions {
  /** With zstd: frames from, and compressed within, this share. */
  zstd?: ZstdShare;
}

/**
 * Stores the layer holding the entries `entries()` yields (called again for
 * each opening the store needs); `source` names it in the report and errors.
 */
export async function pushEntries(
  store: ContentStore,
  entries: () => AsyncIterable<EntryWithContent>,
  source: string,
  options: LayerBuildOptions = {},
  stream: EntriesStreamOptions = {},
): Promise<BuiltLayer> {
  const { compression, level } = resolveCompression(options);
  const mediaType = layerMediaType(compression);
  // Every opening of the layer hashes its own tar stream; the bytes are the same each time, so
  // the counter of the last opening (the one the store finished reading) holds the DiffID.
  let counter = new Sha256Counter();
  const open = () => {
    counter = new Sha256Counter();
    const share = stream.zstd;
    if (compression === 'zstd' && share) {
      return paced(share.compress(hashed(tarFrames(entries(), ZSTD_FRAME, share.pool.take), counter, options.signal), level), share.pacer);
    }
    if (compression === 'zstd') {
      // The tar is written straight into zstd-frame-sized buffers that are reused once compressed.
      // The compressed frames come back as native buffers that V8 barely weighs; pacing on them keeps
      // dead ones from piling up (about 20 MiB of peak RSS on a 1 GiB layer).
      const pool = new BufferPool(ZSTD_FRAME);
      return paced(zstdFrames(hashed(tarFrames(entries(), ZSTD_FRAME, pool.take), counter, options.signal), level, pool.give), new GcPacer());
    }
    return compressLayer(hashed(writeTar(entries()), counter, options.signal), { compression, level });
  };
  const stored = await store.pushStream(open(), { mediaType, reopen: open, signal: options.signal });
  if (counter.size === 0) throw new OciError('INTERNAL', `layer ${source}: the store finished without reading the layer`);
  return { digest: stored.digest, size: stored.size, diffID: counter.digest(), mediaType, tarSize: counter.size, source };
}
