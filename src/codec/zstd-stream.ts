/**
 * Decoding a zstd payload blob as a stream, in memory bounded by one frame
 * (osimage-format.md, "How oci-os lays out a zstd payload"): the blob is cut
 * into frames by walking zstd frame and block headers (frame-scan.ts, RFC
 * 8878 sections 3.1.1 and 3.1.1.2), each data frame is decompressed on its
 * own (zstd.ts), skippable frames are skipped, and a trailing seek table
 * (zstd seekable format) must agree with the frames that were read.
 *
 * A frame is decoded in memory only when what it decodes to is bounded
 * below the in-memory limit: by its declared content size, or, for a frame
 * without one (oci-os's own frames, and `zstd` compressing a pipe), by its
 * block headers, since a block decodes to at most 128 KiB (RFC 8878 section
 * 3.1.1.2.4; libzstd refuses more) and raw and RLE blocks state their size.
 * A frame not so bounded (a few KB of zeros that decode to terabytes), or
 * too large to hold compressed (a single-frame payload from another
 * builder), is handed with the rest of the blob to a streaming decoder:
 * node:zlib's when the runtime has one, else the `zstd` program. Frame
 * headers are still walked on the way, so frames are counted, the seek
 * table checked and trailing bytes refused as on the in-memory path, and
 * the decoder's exit status is checked.
 */
import { spawn } from 'node:child_process';
import { Readable, type Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { isOciError, OciError } from '../errors.js';
import { ByteQueue } from '../util/byte-queue.js';
import { GcPacer } from '../util/gc.js';
import { type FrameScan, scanAt, walkBlocks } from './frame-scan.js';
import { decodeSeekTable, SEEKABLE_MAGIC, type SeekFrame, SKIPPABLE_MAGIC } from './seek-table.js';
import { zstdDecompress } from './zstd.js';

/** Default largest compressed frame held in memory (64 MiB). */
export const defaultMaxFrameBytes = 64 << 20;
/** Largest decoded frame size (declared, or bounded by its blocks) decompressed in one piece (256 MiB). */
const maxFrameContent = 256 << 20;

/** A streaming zstd decoder, fed through `input`; `done` rejects when it found the input corrupt. */
interface StreamingDecoder {
  input: Writable;
  output: Readable;
  done: Promise<void>;
  stop(): void;
}

/** A streaming zstd decoder: node:zlib's when available, else the zstd program. */
function streamingDecoder(): StreamingDecoder {
  const make = (zlib as unknown as { createZstdDecompress?: () => Readable & Writable }).createZstdDecompress;
  if (typeof make === 'function') {
    // zlib reports corrupt input as a stream error.
    const z = make();
    return { input: z, output: z, done: Promise.resolve(), stop: () => z.destroy() };
  }
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  // EPIPE when zstd stops reading early; its exit status says why.
  child.stdin.on('error', () => undefined);
  // The exit status arrives after the output has ended, so the reader waits for it before accepting the data.
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) =>
      reject(
        new OciError('UNSUPPORTED', `a zstd frame cannot be decoded in memory and no streaming zstd decoder is available (${err.message})`, {
          hint: 'use Node.js 22.15 or newer, or install the zstd program',
        }),
      ),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      const said = stderr
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .at(-1);
      reject(new Error(`zstd ${code === null ? `was stopped by ${signal}` : `exited with ${code}`}${said ? ` (${said})` : ''}`));
    });
  });
  done.catch(() => undefined); // awaited by the reader; never an unhandled rejection when it stops early
  return {
    input: child.stdin,
    output: child.stdout,
    done,
    stop: () => {
      child.stdout.destroy();
      child.stdin.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}

/** What was seen of one data frame, for the seek table check. */
interface SeenFrame extends SeekFrame {
  offset: number;
}

/** A data frame that went through the streaming decoder: what it decodes to is known only in total. */
interface StreamedFrame {
  offset: number;
  compressedSize: number;
  contentSize?: number;
}

/** What the streaming decoder saw from its first frame to the end of the blob. */
interface StreamedRest {
  frames: StreamedFrame[];
  /** Decoded bytes of all of `frames`. */
  decodedSize: number;
  /** The seek table, when it is the blob's last frame. */
  seekTable?: SeekFrame[];
}

/** The frames of a seek table, when a skippable frame is one. */
function seekTableIn(bytes: Buffer): SeekFrame[] | undefined {
  if (bytes.readUInt32LE(0) === SKIPPABLE_MAGIC && bytes.length >= 17 && bytes.readUInt32LE(bytes.length - 4) === SEEKABLE_MAGIC) return decodeSeekTable(bytes);
  return undefined;
}

/** Options of {@link decodeZstdStream}. */
export interface DecodeZstdOptions {
  /** Largest compressed frame held in memory (default {@link defaultMaxFrameBytes}). */
  maxFrameBytes?: number;
  /** Frames decompressing while the caller takes the previous one (default 2). */
  framesInFlight?: number;
  /**
   * Accept a blob of no bytes at all as decoding to nothing. Monogon's
   * builder stores an empty payload so (no frame at all), and its reader
   * never opens a payload of size 0 (osimage-format.md, "Edge cases"); any
   * other blob without a data frame is still refused.
   */
  allowEmptyBlob?: boolean;
}

/**
 * Yields the decompressed bytes of a zstd blob (any number of concatenated
 * frames, skippable frames skipped), one frame at a time; `framesInFlight`
 * frames (default 2) decompress on the thread pool while the caller hashes
 * the previous one, so memory is bounded by that many frames (frames whose
 * size is not bounded go through a streaming decoder; see the module
 * comment). A truncated or corrupt frame fails with INVALID_FORMAT naming
 * the frame and its compressed offset.
 */
export async function* decodeZstdStream(source: AsyncIterable<Buffer>, options: DecodeZstdOptions = {}): AsyncGenerator<Buffer> {
  const maxFrame = options.maxFrameBytes ?? defaultMaxFrameBytes;
  const q = new ByteQueue();
  const frames = new DecodingFrames(Math.max(1, options.framesInFlight ?? 2));
  const seen = frames.seen;
  let offset = 0; // compressed offset of the queue head
  let scan: FrameScan | undefined;
  let seekTable: SeekFrame[] | undefined;
  let streamed: StreamedRest | undefined;
  const it = source[Symbol.asyncIterator]();
  let ended = false;

  try {
    reading: for (;;) {
      // Cut every complete frame out of the queue.
      for (;;) {
        scan ??= scanAt(q, offset);
        if (!scan) break;
        if (scan.kind === 'data') {
          walkBlocks(q, scan, offset);
          if ((scan.contentSize ?? scan.decodedBound) > maxFrameContent || (scan.end ?? scan.cursor) > maxFrame) {
            // Too big to hold: this frame and everything after it go through a streaming decoder.
            yield* frames.settle(0);
            streamed = yield* decodeStreaming(q, scan, it, offset, maxFrame);
            break reading;
          }
        } else if (scan.end! > maxFrame) {
          throw new OciError('UNSUPPORTED', `skippable frame at compressed offset ${offset} is larger than ${maxFrame} bytes`);
        }
        if (scan.end === undefined || q.length < scan.end) break;
        const bytes = q.take(scan.end);
        if (scan.kind === 'data') {
          frames.start(bytes, offset, scan.contentSize);
          seekTable = undefined; // a seek table counts only as the blob's last frame
          yield* frames.settleToLimit();
        } else {
          seekTable = seekTableIn(bytes) ?? seekTable;
        }
        offset += bytes.length;
        scan = undefined;
      }
      if (ended) break;
      const next = await it.next();
      if (next.done) ended = true;
      else q.push(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value));
    }
    yield* frames.settle(0);
  } catch (err) {
    // The frames before a failure in the stream (no frame where one should start, a truncated
    // blob) are sound: hand them over first, so that the caller's position names the frame that
    // failed, not one still decoding. An earlier frame that fails to decode is the first error.
    if (!frames.failed) yield* frames.settle(0);
    throw err;
  } finally {
    await frames.stopped();
  }
  if (streamed) {
    if (streamed.seekTable) checkSeekTable(streamed.seekTable, seen, streamed);
    return;
  }
  if (q.length > 0 || scan) {
    throw new OciError('INVALID_FORMAT', `zstd stream is truncated: ${q.length} bytes of an incomplete frame at compressed offset ${offset}`);
  }
  if (seen.length === 0) {
    if (offset === 0 && options.allowEmptyBlob) return;
    throw new OciError('INVALID_FORMAT', offset === 0 ? 'zstd blob is empty: it holds no zstd frame' : 'zstd blob holds no zstd frame');
  }
  if (seekTable) checkSeekTable(seekTable, seen);
}

/** A data frame handed to the thread pool, not yet handed over. */
interface PendingFrame {
  out: Promise<Buffer>;
  offset: number;
  compressedSize: number;
  contentSize?: number;
}

/**
 * Data frames decompressing on the thread pool while the next ones are
 * read, handed over in blob order; at most `inflight` at a time.
 */
class DecodingFrames {
  /** Frames handed over, in order (what the seek table must list). */
  readonly seen: SeenFrame[] = [];
  private readonly pending: PendingFrame[] = [];
  private readonly pacer = new GcPacer();
  /** Set once a frame failed to decode: the frames after it are not handed over. */
  failed = false;

  constructor(private readonly inflight: number) {}

  /** Starts decompressing a frame cut from the blob at compressed offset `offset`. */
  start(frame: Buffer, offset: number, contentSize: number | undefined): void {
    const out = this.decode(frame, offset, this.seen.length + this.pending.length);
    out.catch(() => undefined); // awaited in order by settle(); never an unhandled rejection
    this.pending.push({ out, offset, compressedSize: frame.length, contentSize });
  }

  /** Hands over frames until no more than `inflight - 1` are still decoding, so the next can start. */
  settleToLimit(): AsyncGenerator<Buffer> {
    return this.settle(this.inflight - 1);
  }

  /** Hands over decoded frames in order until `keep` are left decoding; fails on the first that does not decode. */
  async *settle(keep: number): AsyncGenerator<Buffer> {
    while (this.pending.length > keep) {
      const f = this.pending.shift()!;
      const out = await f.out.catch((err: unknown) => {
        this.failed = true;
        throw err;
      });
      if (f.contentSize !== undefined && out.length !== f.contentSize) {
        throw new OciError(
          'INVALID_FORMAT',
          `zstd frame ${this.seen.length} at compressed offset ${f.offset} decodes to ${out.length} bytes, its header says ${f.contentSize}`,
        );
      }
      this.seen.push({ offset: f.offset, compressedSize: f.compressedSize, decompressedSize: out.length });
      if (out.length > 0) yield out;
    }
  }

  /** Waits for every frame still decoding (after a failure or an early stop), so none outlives the stream. */
  async stopped(): Promise<void> {
    await Promise.allSettled(this.pending.map((f) => f.out));
  }

  private async decode(frame: Buffer, at: number, index: number): Promise<Buffer> {
    try {
      const out = await zstdDecompress(frame);
      this.pacer.add(out.length);
      return out;
    } catch (err) {
      throw new OciError('INVALID_FORMAT', `zstd frame ${index} at compressed offset ${at} is corrupt: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * The seek table must list exactly the frames that were read. Streamed
 * frames are checked as far as they are known: compressed sizes one by one,
 * declared content sizes, and the decoded bytes in total.
 */
function checkSeekTable(table: SeekFrame[], seen: SeenFrame[], streamed?: StreamedRest): void {
  const count = seen.length + (streamed?.frames.length ?? 0);
  if (table.length !== count) {
    throw new OciError('INVALID_FORMAT', `seek table lists ${table.length} frames, the blob holds ${count}`);
  }
  seen.forEach((s, i) => {
    const f = table[i]!;
    if (f.compressedSize !== s.compressedSize || f.decompressedSize !== s.decompressedSize) {
      throw new OciError(
        'INVALID_FORMAT',
        `seek table entry ${i} (${f.compressedSize} -> ${f.decompressedSize} bytes) does not match frame ${i} at compressed offset ${s.offset} (${s.compressedSize} -> ${s.decompressedSize} bytes)`,
      );
    }
  });
  if (!streamed) return;
  let listed = 0;
  streamed.frames.forEach((s, k) => {
    const i = seen.length + k;
    const f = table[i]!;
    listed += f.decompressedSize;
    if (f.compressedSize !== s.compressedSize || (s.contentSize !== undefined && f.decompressedSize !== s.contentSize)) {
      throw new OciError(
        'INVALID_FORMAT',
        `seek table entry ${i} (${f.compressedSize} -> ${f.decompressedSize} bytes) does not match frame ${i} at compressed offset ${s.offset} (${s.compressedSize} -> ${s.contentSize ?? 'undeclared'} bytes)`,
      );
    }
  });
  if (listed !== streamed.decodedSize) {
    const first = seen.length;
    const entries = first === table.length - 1 ? `entry ${first} lists` : `entries ${first} to ${table.length - 1} list`;
    throw new OciError(
      'INVALID_FORMAT',
      `seek table ${entries} ${listed} decompressed bytes, the frames from compressed offset ${streamed.frames[0]!.offset} decode to ${streamed.decodedSize}`,
    );
  }
}

/**
 * Decodes the frame at the queue head (`first`, being scanned) and the rest
 * of the source through a streaming decoder. Data frames are passed on as
 * their blocks are walked, never held whole; skippable frames (at most
 * `maxFrame` bytes) are kept back to find the seek table. Fails like the
 * in-memory path on trailing bytes that are no frame and on a truncated
 * frame, and on a decoder that found the data corrupt.
 */
async function* decodeStreaming(
  q: ByteQueue,
  first: FrameScan,
  rest: AsyncIterator<Buffer>,
  start: number,
  maxFrame: number,
): AsyncGenerator<Buffer, StreamedRest> {
  const decoder = streamingDecoder();
  const frames: StreamedFrame[] = [];
  let seekTable: SeekFrame[] | undefined;
  async function* input(): AsyncGenerator<Buffer> {
    let offset = start; // compressed offset of the current frame
    let scan: FrameScan | undefined = first;
    let passed = 0; // bytes of the current data frame already passed to the decoder
    let ended = false;
    for (;;) {
      for (;;) {
        scan ??= scanAt(q, offset);
        if (!scan) break;
        if (scan.kind === 'data') {
          walkBlocks(q, scan, offset, passed);
          // Everything before the next unread block header can go.
          const upTo = Math.min(passed + q.length, scan.end ?? scan.cursor);
          if (upTo > passed) {
            const n = upTo - passed;
            passed = upTo;
            yield q.take(n);
          }
          if (passed !== scan.end) break;
          frames.push({ offset, compressedSize: scan.end, contentSize: scan.contentSize });
          seekTable = undefined; // a seek table counts only as the blob's last frame
          passed = 0;
        } else {
          if (scan.end! > maxFrame) throw new OciError('UNSUPPORTED', `skippable frame at compressed offset ${offset} is larger than ${maxFrame} bytes`);
          if (q.length < scan.end!) break;
          seekTable = seekTableIn(q.take(scan.end!)) ?? seekTable;
        }
        offset += scan.end!;
        scan = undefined;
      }
      if (ended) break;
      const next = await rest.next();
      if (next.done) ended = true;
      else q.push(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value));
    }
    if (q.length > 0 || scan) {
      throw new OciError('INVALID_FORMAT', `zstd stream is truncated: ${passed + q.length} bytes of an incomplete frame at compressed offset ${offset}`);
    }
  }
  // Byte mode with a small high-water mark: the walk reads ahead of the decoder by no more than that.
  const feed = Readable.from(input(), { objectMode: false, highWaterMark: 1 << 16 });
  feed.on('error', (err) => decoder.output.destroy(err));
  feed.pipe(decoder.input);
  let decodedSize = 0;
  try {
    for await (const out of decoder.output) {
      decodedSize += (out as Buffer).length;
      yield out as Buffer;
    }
    await decoder.done;
  } catch (err) {
    if (isOciError(err)) throw err;
    throw new OciError('INVALID_FORMAT', `zstd stream from compressed offset ${start} is corrupt: ${(err as Error).message}`, { cause: err });
  } finally {
    feed.destroy();
    decoder.stop();
  }
  return { frames, decodedSize, seekTable };
}
