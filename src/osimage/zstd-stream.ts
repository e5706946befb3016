/**
 * Decoding a zstd payload blob as a stream, in memory bounded by one frame
 * (osimage-format.md, "How oci-os lays out a zstd payload"): the blob is cut
 * into frames by walking zstd frame and block headers (RFC 8878 sections
 * 3.1.1 and 3.1.1.2), each data frame is decompressed on its own
 * (build/zstd.ts), skippable frames are skipped, and a trailing seek table
 * (zstd seekable format) must agree with the frames that were read. A frame
 * too large to hold (a single-frame payload from another builder) is handed
 * to a streaming decoder instead: node:zlib's when the runtime has one, else
 * the `zstd` program.
 */
import { spawn } from 'node:child_process';
import { Duplex, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { OciError, isOciError } from '../errors.js';
import { decodeSeekTable, SEEKABLE_MAGIC, SKIPPABLE_MAGIC, type SeekFrame } from '../build/seek-table.js';
import { zstdDecompress } from '../build/zstd.js';
import { GcPacer } from '../util/gc.js';

const ZSTD_MAGIC = 0xfd2fb528;
/** Default largest compressed frame held in memory (64 MiB). */
export const defaultMaxFrameBytes = 64 << 20;
/** Largest declared frame content size decompressed in one piece (256 MiB). */
const maxFrameContent = 256 << 20;

/** Bytes received but not yet cut into frames; read by absolute index without copying. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.length += b.length;
  }
  byteAt(i: number): number {
    for (const p of this.parts) {
      if (i < p.length) return p[i]!;
      i -= p.length;
    }
    throw new OciError('INTERNAL', 'read past the queued bytes');
  }
  uint(i: number, n: number): number {
    let v = 0;
    for (let k = n - 1; k >= 0; k--) v = v * 256 + this.byteAt(i + k);
    return v;
  }
  /** Removes and returns the first `n` bytes as one buffer. */
  take(n: number): Buffer {
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const p = this.parts[0]!;
      if (p.length <= need) {
        out.push(p);
        this.parts.shift();
        need -= p.length;
      } else {
        out.push(p.subarray(0, need));
        this.parts[0] = p.subarray(need);
        need = 0;
      }
    }
    this.length -= n;
    return out.length === 1 ? out[0]! : Buffer.concat(out, n);
  }
  drain(): Buffer[] {
    const p = this.parts;
    this.parts = [];
    this.length = 0;
    return p;
  }
}

/** Where a frame's end lies, as far as the queued bytes tell; `end` undefined = need more bytes. */
interface FrameScan {
  kind: 'data' | 'skippable';
  /** Bytes of the frame known so far (header + blocks walked). */
  cursor: number;
  end?: number;
  contentSize?: number;
  lastBlock: boolean;
  checksum: boolean;
}

/** Starts scanning the frame at the queue head (needs 4+ bytes), or throws on a bad magic. */
function startFrame(q: ByteQueue, offset: number): FrameScan | undefined {
  const magic = q.uint(0, 4);
  if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
    if (q.length < 8) return undefined;
    return { kind: 'skippable', cursor: 8, end: 8 + q.uint(4, 4), lastBlock: true, checksum: false };
  }
  if (magic !== ZSTD_MAGIC) throw new OciError('INVALID_FORMAT', `no zstd frame at compressed offset ${offset}`);
  if (q.length < 5) return undefined;
  const fhd = q.byteAt(4);
  if (fhd & 0x08) throw new OciError('INVALID_FORMAT', `zstd frame at compressed offset ${offset} has a reserved header bit set`);
  const single = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >> 6;
  const didSize = [0, 1, 2, 4][fhd & 3]!;
  const fcsSize = fcsFlag === 0 ? (single ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  const header = 5 + (single ? 0 : 1) + didSize + fcsSize;
  if (q.length < header) return undefined;
  let contentSize: number | undefined;
  if (fcsSize > 0) {
    const at = header - fcsSize;
    contentSize = fcsSize === 8 ? q.uint(at, 4) + q.uint(at + 4, 4) * 2 ** 32 : q.uint(at, fcsSize) + (fcsSize === 2 ? 256 : 0);
  }
  return { kind: 'data', cursor: header, contentSize, lastBlock: false, checksum: (fhd & 0x04) !== 0 };
}

/** Walks block headers as far as the queued bytes allow; sets `end` once the last block is known. */
function walkBlocks(q: ByteQueue, s: FrameScan, offset: number): void {
  while (s.end === undefined && s.cursor + 3 <= q.length) {
    const h = q.uint(s.cursor, 3);
    const type = (h >> 1) & 3;
    if (type === 3) throw new OciError('INVALID_FORMAT', `zstd frame at compressed offset ${offset} has a block of reserved type`);
    s.cursor += 3 + (type === 1 ? 1 : h >>> 3);
    if (h & 1) s.end = s.cursor + (s.checksum ? 4 : 0);
  }
}

/** A streaming zstd decoder: node:zlib's when available, else the zstd program; undefined when neither exists. */
function streamingDecoder(): Duplex | undefined {
  const make = (zlib as unknown as { createZstdDecompress?: () => Duplex }).createZstdDecompress;
  if (typeof make === 'function') return make();
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err) => duplex.destroy(new OciError('UNSUPPORTED', `a zstd frame is too large to decode in memory and no streaming zstd decoder is available (${err.message})`, { hint: 'use Node.js 22.15 or newer, or install the zstd program' })));
  child.on('exit', (code) => { if (code) duplex.destroy(new OciError('INVALID_FORMAT', `zstd stream is corrupt (zstd exited with ${code})`)); });
  return duplex;
}

/** What was seen of one data frame, for the seek table check. */
interface SeenFrame extends SeekFrame {
  offset: number;
}

/**
 * Yields the decompressed bytes of a zstd blob (any number of concatenated
 * frames, skippable frames skipped), one frame at a time; `framesInFlight`
 * frames (default 2) decompress on the thread pool while the caller hashes
 * the previous one, so memory is bounded by that many frames. A truncated or
 * corrupt frame fails with INVALID_FORMAT naming the frame and its
 * compressed offset.
 */
export async function* decodeZstdStream(source: AsyncIterable<Buffer>, options: { maxFrameBytes?: number; framesInFlight?: number } = {}): AsyncGenerator<Buffer> {
  const maxFrame = options.maxFrameBytes ?? defaultMaxFrameBytes;
  const q = new ByteQueue();
  const seen: SeenFrame[] = [];
  let offset = 0; // compressed offset of the queue head
  let scan: FrameScan | undefined;
  let seekTable: { frames: SeekFrame[]; offset: number; end: number } | undefined;
  const it = source[Symbol.asyncIterator]();
  let ended = false;

  const pacer = new GcPacer();
  const decode = async (frame: Buffer, at: number, index: number): Promise<Buffer> => {
    try {
      const out = await zstdDecompress(frame);
      pacer.add(out.length);
      return out;
    } catch (err) {
      throw new OciError('INVALID_FORMAT', `zstd frame ${index} at compressed offset ${at} is corrupt: ${(err as Error).message}`, { cause: err });
    }
  };
  // Frames being decompressed on the thread pool while the next one is read (in order; at most `inflight`).
  const pending: Array<{ out: Promise<Buffer>; offset: number; compressedSize: number; contentSize?: number }> = [];
  const inflight = Math.max(1, options.framesInFlight ?? 2);
  async function* settle(keep: number): AsyncGenerator<Buffer> {
    while (pending.length > keep) {
      const f = pending.shift()!;
      const out = await f.out;
      if (f.contentSize !== undefined && out.length !== f.contentSize) {
        throw new OciError('INVALID_FORMAT', `zstd frame ${seen.length} at compressed offset ${f.offset} decodes to ${out.length} bytes, its header says ${f.contentSize}`);
      }
      seen.push({ offset: f.offset, compressedSize: f.compressedSize, decompressedSize: out.length });
      if (out.length > 0) yield out;
    }
  }

  try {
    for (;;) {
      // Cut every complete frame out of the queue.
      for (;;) {
        if (!scan) {
          if (q.length < 4) break;
          scan = startFrame(q, offset);
          if (!scan) break;
        }
        if (scan.kind === 'data') {
          walkBlocks(q, scan, offset);
          if ((scan.end ?? scan.cursor) > maxFrame || (scan.contentSize ?? 0) > maxFrameContent) {
            // Too big to hold: everything from here goes through a streaming decoder.
            yield* settle(0);
            yield* decodeStreaming(q.drain(), it, offset);
            return;
          }
        } else if (scan.end! > maxFrame) {
          throw new OciError('UNSUPPORTED', `skippable frame at compressed offset ${offset} is larger than ${maxFrame} bytes`);
        }
        if (scan.end === undefined || q.length < scan.end) break;
        const bytes = q.take(scan.end);
        if (scan.kind === 'data') {
          const out = decode(bytes, offset, seen.length + pending.length);
          out.catch(() => undefined); // awaited in order by settle(); never an unhandled rejection
          pending.push({ out, offset, compressedSize: bytes.length, contentSize: scan.contentSize });
          seekTable = undefined; // a seek table counts only as the blob's last frame
          yield* settle(inflight - 1);
        } else if (bytes.readUInt32LE(0) === SKIPPABLE_MAGIC && bytes.length >= 17 && bytes.readUInt32LE(bytes.length - 4) === SEEKABLE_MAGIC) {
          seekTable = { frames: decodeSeekTable(bytes), offset, end: offset + bytes.length };
        }
        offset += bytes.length;
        scan = undefined;
      }
      if (ended) break;
      const next = await it.next();
      if (next.done) ended = true;
      else q.push(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value));
    }
    yield* settle(0);
  } finally {
    await Promise.allSettled(pending.map((f) => f.out));
  }
  if (q.length > 0 || scan) {
    throw new OciError('INVALID_FORMAT', `zstd stream is truncated: ${q.length} bytes of an incomplete frame at compressed offset ${offset}`);
  }
  if (seen.length === 0) throw new OciError('INVALID_FORMAT', 'zstd blob holds no zstd frame');
  if (seekTable) checkSeekTable(seekTable.frames, seen);
}

/** The seek table must list exactly the frames that were read. */
function checkSeekTable(table: SeekFrame[], seen: SeenFrame[]): void {
  if (table.length !== seen.length) {
    throw new OciError('INVALID_FORMAT', `seek table lists ${table.length} frames, the blob holds ${seen.length}`);
  }
  table.forEach((f, i) => {
    const s = seen[i]!;
    if (f.compressedSize !== s.compressedSize || f.decompressedSize !== s.decompressedSize) {
      throw new OciError('INVALID_FORMAT', `seek table entry ${i} (${f.compressedSize} -> ${f.decompressedSize} bytes) does not match frame ${i} at compressed offset ${s.offset} (${s.compressedSize} -> ${s.decompressedSize} bytes)`);
    }
  });
}

/** Decodes queued bytes plus the rest of the source through a streaming decoder. */
async function* decodeStreaming(head: Buffer[], rest: AsyncIterator<Buffer>, offset: number): AsyncGenerator<Buffer> {
  const decoder = streamingDecoder();
  if (!decoder) throw new OciError('UNSUPPORTED', 'no streaming zstd decoder available');
  async function* input(): AsyncGenerator<Buffer> {
    yield* head;
    for (;;) {
      const n = await rest.next();
      if (n.done) return;
      yield n.value;
    }
  }
  const feed = Readable.from(input());
  feed.on('error', (err) => decoder.destroy(err));
  feed.pipe(decoder);
  try {
    for await (const out of decoder) yield out as Buffer;
  } catch (err) {
    if (isOciError(err)) throw err;
    throw new OciError('INVALID_FORMAT', `zstd stream from compressed offset ${offset} is corrupt: ${(err as Error).message}`, { cause: err });
  } finally {
    feed.destroy();
    decoder.destroy();
  }
}
