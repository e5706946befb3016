/**
 * Streaming payload encoder (shared/spec/osimage-format.md): reads a payload
 * once, computes the SHA-256 of every hash chunk of the uncompressed bytes,
 * and yields the blob bytes — the payload as is, or a sequence of independent
 * zstd frames, each holding whole hash chunks, closed by a seek table.
 * Frames are compressed in parallel on the thread pool; output order and
 * bytes are deterministic. Memory: at most `concurrency` frames in flight.
 */
import { createHash } from 'node:crypto';
import { encodeSeekTable, type SeekFrame } from '../codec/seek-table.js';
import { defaultZstdFramesInFlight, zstdCompress } from '../codec/zstd.js';
import { OciError } from '../errors.js';
import { MediaType } from '../oci/mediatypes.js';
import type { BufferPool } from '../util/buffer-pool.js';
import { GcPacer } from '../util/gc.js';
import { encodeChunkHash, validateHashChunkSize } from './format.js';

export type Compression = 'zstd' | 'none';

/** How a payload is encoded. Zero values mean the defaults. */
export interface PayloadEncoding {
  /** `zstd` (default) or `none`. */
  compression?: Compression;
  /** zstd level 1-19 (default 3). */
  level?: number;
  /** Uncompressed bytes per hash chunk (default 1 MiB, at most 16 MiB). */
  hashChunkSize?: number;
  /** Uncompressed bytes per zstd frame, a multiple of the hash chunk size (default 4 MiB). */
  frameSize?: number;
  /** Frames compressed at once (default: see defaultZstdFramesInFlight). */
  concurrency?: number;
}

/** What encoding a payload produced, known once its blob has been consumed. */
export interface EncodedPayload {
  /** Uncompressed size. */
  size: number;
  hashChunkSize: number;
  chunkHashes: string[];
  mediaType: string;
  /** zstd frames written (0 for `none`). */
  frames: number;
}

export const DEFAULT_FRAME_SIZE = 4 << 20;
const MAX_FRAME_SIZE = 1 << 30;

/** Fills in defaults and validates an encoding; throws INVALID_ARGUMENT with a clear message. */
export function resolveEncoding(e: PayloadEncoding = {}): Required<PayloadEncoding> {
  const compression = e.compression ?? 'zstd';
  if (compression !== 'zstd' && compression !== 'none') {
    throw new OciError('INVALID_ARGUMENT', `invalid compression "${compression}": use zstd or none`);
  }
  const level = e.level ?? 3;
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new OciError('INVALID_ARGUMENT', `invalid compression level ${level}: use a zstd level from 1 to 19`);
  }
  const hashChunkSize = e.hashChunkSize ?? 1 << 20;
  validateHashChunkSize(hashChunkSize);
  const frameSize = e.frameSize ?? Math.max(DEFAULT_FRAME_SIZE - (DEFAULT_FRAME_SIZE % hashChunkSize), hashChunkSize);
  if (!Number.isSafeInteger(frameSize) || frameSize <= 0 || frameSize % hashChunkSize !== 0 || frameSize > MAX_FRAME_SIZE) {
    throw new OciError('INVALID_ARGUMENT', `invalid frame size ${frameSize}: it must be a multiple of the hash chunk size (${hashChunkSize}) and at most 1GiB`);
  }
  const concurrency = e.concurrency ?? defaultZstdFramesInFlight;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new OciError('INVALID_ARGUMENT', `invalid concurrency ${concurrency}: use 1 or more`);
  }
  return { compression, level, hashChunkSize, frameSize, concurrency };
}

/** Appends the chunk hashes of one frame (a whole number of chunks, but for the last frame). */
function hashChunks(frame: Buffer, chunkSize: number, out: string[]): void {
  for (let off = 0; off < frame.length; off += chunkSize) {
    const end = Math.min(off + chunkSize, frame.length);
    out.push(encodeChunkHash(createHash('sha256').update(frame.subarray(off, end)).digest()));
  }
}

/**
 * Encodes a payload given as frames of `encoding.frameSize` bytes (see
 * frames.ts). Iterate `blob` once to get the blob bytes; `result` resolves
 * after that with the chunk hashes. With zstd, each frame is given back to
 * `pool` once it is compressed and hashed.
 */
export function encodePayload(
  frames: AsyncIterable<Buffer>,
  encoding: PayloadEncoding = {},
  pool?: BufferPool,
): { blob: AsyncGenerator<Buffer>; result: () => EncodedPayload } {
  const enc = resolveEncoding(encoding);
  const chunkHashes: string[] = [];
  let size = 0;
  let frameCount = 0;
  let done = false;

  async function* raw(): AsyncGenerator<Buffer> {
    for await (const frame of frames) {
      hashChunks(frame, enc.hashChunkSize, chunkHashes);
      size += frame.length;
      yield frame;
    }
    done = true;
  }

  async function* zstd(): AsyncGenerator<Buffer> {
    const seek: SeekFrame[] = [];
    const inflight: Array<Promise<Buffer>> = [];
    const inputs: Buffer[] = [];
    const pacer = new GcPacer();
    let sawAny = false;
    const it = frames[Symbol.asyncIterator]();
    try {
      for (;;) {
        while (inflight.length < enc.concurrency) {
          const next = await it.next();
          if (next.done) break;
          const frame = next.value;
          sawAny = true;
          const pending = zstdCompress(frame, enc.level);
          // Hash while the thread pool compresses.
          hashChunks(frame, enc.hashChunkSize, chunkHashes);
          size += frame.length;
          inflight.push(pending);
          inputs.push(frame);
        }
        if (inflight.length === 0) break;
        const out = await inflight.shift()!;
        const input = inputs.shift()!;
        const consumed = input.length;
        pool?.give(input);
        seek.push({ compressedSize: out.length, decompressedSize: consumed });
        pacer.add(consumed);
        yield out;
      }
      if (!sawAny) {
        // An empty payload still gets one (empty) frame so every decoder sees a zstd stream.
        const out = await zstdCompress(Buffer.alloc(0), enc.level);
        seek.push({ compressedSize: out.length, decompressedSize: 0 });
        yield out;
      }
      frameCount = seek.length;
      yield encodeSeekTable(seek);
      done = true;
    } finally {
      // Settle what is still running so no rejection goes unhandled when the consumer stops early.
      await Promise.allSettled(inflight);
      await it.return?.();
    }
  }

  return {
    blob: enc.compression === 'zstd' ? zstd() : raw(),
    result: () => {
      if (!done) throw new OciError('INTERNAL', 'payload result read before its blob was consumed');
      return {
        size,
        hashChunkSize: enc.hashChunkSize,
        chunkHashes,
        mediaType: enc.compression === 'zstd' ? MediaType.zstd : MediaType.octetStream,
        frames: frameCount,
      };
    },
  };
}
