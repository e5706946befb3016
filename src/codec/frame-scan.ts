/**
 * Finding where zstd frames end from their headers alone (RFC 8878 sections
 * 3.1.1 and 3.1.1.2), over bytes still arriving: the frame header gives the
 * declared content size, and each block header the block's length and a
 * bound on what it decodes to. The stream decoder (zstd-stream.ts) cuts a
 * blob into frames with this without decompressing anything.
 */
import { OciError } from '../errors.js';
import type { ByteQueue } from '../util/byte-queue.js';

const ZSTD_MAGIC = 0xfd2fb528;
/** Most bytes one block decodes to (RFC 8878 Block_Maximum_Size). */
const MAX_BLOCK_DECODED = 128 << 10;

/** Where a frame's end lies, as far as the queued bytes tell; `end` undefined = need more bytes. */
export interface FrameScan {
  kind: 'data' | 'skippable';
  /** Bytes of the frame known so far (header + blocks walked). */
  cursor: number;
  end?: number;
  contentSize?: number;
  /** Most bytes the blocks walked so far decode to. */
  decodedBound: number;
  lastBlock: boolean;
  checksum: boolean;
}

/** Starts scanning the frame at the queue head; undefined while too few bytes are queued. */
export function scanAt(q: ByteQueue, offset: number): FrameScan | undefined {
  return q.length < 4 ? undefined : startFrame(q, offset);
}

/** Starts scanning the frame at the queue head (needs 4+ bytes), or throws on a bad magic. */
function startFrame(q: ByteQueue, offset: number): FrameScan | undefined {
  const magic = q.uintLE(0, 4);
  if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
    if (q.length < 8) return undefined;
    return { kind: 'skippable', cursor: 8, end: 8 + q.uintLE(4, 4), decodedBound: 0, lastBlock: true, checksum: false };
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
    contentSize = fcsSize === 8 ? q.uintLE(at, 4) + q.uintLE(at + 4, 4) * 2 ** 32 : q.uintLE(at, fcsSize) + (fcsSize === 2 ? 256 : 0);
  }
  return { kind: 'data', cursor: header, contentSize, decodedBound: 0, lastBlock: false, checksum: (fhd & 0x04) !== 0 };
}

/**
 * Walks block headers as far as the queued bytes allow; sets `end` once the
 * last block is known. `base` bytes of the frame have already left the queue
 * (a streamed frame is passed on as it is walked).
 */
export function walkBlocks(q: ByteQueue, s: FrameScan, offset: number, base = 0): void {
  while (s.end === undefined && s.cursor - base + 3 <= q.length) {
    const h = q.uintLE(s.cursor - base, 3);
    const type = (h >> 1) & 3;
    if (type === 3) throw new OciError('INVALID_FORMAT', `zstd frame at compressed offset ${offset} has a block of reserved type`);
    s.cursor += 3 + (type === 1 ? 1 : h >>> 3);
    s.decodedBound += type === 2 ? MAX_BLOCK_DECODED : h >>> 3; // raw and RLE blocks give their decoded size
    if (h & 1) s.end = s.cursor + (s.checksum ? 4 : 0);
  }
}
