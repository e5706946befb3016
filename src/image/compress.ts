/**
 * Layer compression (image-spec layer.md media types): gzip through zlib at
 * a fixed level, with the header's OS byte pinned so the bytes do not depend
 * on the building machine (zlib already writes mtime 0 and no file name);
 * zstd as a concatenation of independent frames of 8 MiB of tar each,
 * compressed in parallel on the thread pool (every zstd decoder reads
 * concatenated frames as one stream); or none.
 *
 * The tar (and so the DiffID) depends only on the inputs; the compressed
 * bytes also depend on the compressor build — Node.js's bundled zlib
 * (`process.versions.zlib`; it has changed between Node.js releases) and
 * the zstd binding — so byte-identical layer digests across machines need
 * the same Node.js and dependency versions, as with any compressing builder.
 */
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { recutFrames } from '../codec/frames.js';
import { defaultZstdFramesInFlight, zstdCompress } from '../codec/zstd.js';
import { OciError } from '../errors.js';
import { MediaType } from '../oci/mediatypes.js';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** Compression and level; zero values mean gzip level 6 or zstd level 3. */
export interface CompressionOptions {
  compression?: LayerCompression;
  level?: number;
}

/** Bytes of tar per zstd frame of a layer. */
export const ZSTD_FRAME = 8 << 20;
/**
 * Frames compressed at once: one per core beyond the one the main thread
 * needs to write, hash and store the tar, at least 2 and at most 3 (each
 * costs a frame and its output in memory). More compressions than cores
 * starve the main thread, which feeds them.
 */
const ZSTD_INFLIGHT = defaultZstdFramesInFlight;

/** The layer media type of a compression. */
export function layerMediaType(c: LayerCompression): string {
  return c === 'gzip' ? MediaType.ociLayerGzip : c === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
}

/** Validates compression options and fills in the level. */
export function resolveCompression(o: CompressionOptions = {}): { compression: LayerCompression; level: number } {
  const compression = o.compression ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') {
    throw new OciError('INVALID_ARGUMENT', `invalid layer compression "${String(compression)}": use gzip, zstd or none`);
  }
  const level = o.level ?? (compression === 'zstd' ? 3 : 6);
  const [min, max] = compression === 'zstd' ? [1, 19] : [1, 9];
  if (compression !== 'none' && (!Number.isInteger(level) || level < min || level > max)) {
    throw new OciError('INVALID_ARGUMENT', `invalid ${compression} level ${level}: use ${min} to ${max}`);
  }
  return { compression, level };
}

/** gzip with a fixed OS byte (3, Unix) in the 10-byte header. */
async function* gzip(input: AsyncIterable<Buffer>, level: number): AsyncGenerator<Buffer> {
  const gz = createGzip({ level, chunkSize: 256 * 1024 });
  const src = Readable.from(input);
  src.on('error', (err) => gz.destroy(err));
  src.pipe(gz);
  let offset = 0;
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      if (offset <= 9 && offset + chunk.length > 9) chunk[9 - offset] = 3;
      offset += chunk.length;
      yield chunk;
    }
  } finally {
    src.destroy();
  }
}

/**
 * zstd frames of `frames` (one each), compressed in parallel on the thread
 * pool and yielded in order. `done` receives each input frame once its
 * compression has ended (so it may be reused), including on failure or
 * early return.
 */
export async function* zstdFrames(frames: AsyncIterable<Buffer>, level: number, done?: (frame: Buffer) => void): AsyncGenerator<Buffer> {
  const inflight: Array<Promise<Buffer>> = [];
  const it = frames[Symbol.asyncIterator]();
  const compress = (frame: Buffer): Promise<Buffer> => {
    const out = zstdCompress(frame, level);
    if (!done) return out;
    return out.finally(() => done(frame));
  };
  try {
    for (;;) {
      while (inflight.length < ZSTD_INFLIGHT) {
        const next = await it.next();
        if (next.done) break;
        inflight.push(compress(next.value));
      }
      if (inflight.length === 0) break;
      yield await inflight.shift()!;
    }
  } finally {
    await Promise.allSettled(inflight);
    await it.return?.(undefined);
  }
}

/** zstd frames of 8 MiB of the input, compressed in parallel, yielded in order. */
function zstd(input: AsyncIterable<Buffer>, level: number): AsyncGenerator<Buffer> {
  return zstdFrames(recutFrames(input, ZSTD_FRAME), level);
}

/** Compresses a tar stream as a layer. */
export function compressLayer(input: AsyncIterable<Buffer>, options: CompressionOptions = {}): AsyncIterable<Buffer> {
  const { compression, level } = resolveCompression(options);
  if (compression === 'gzip') return gzip(input, level);
  if (compression === 'zstd') return zstd(input, level);
  return input;
}
