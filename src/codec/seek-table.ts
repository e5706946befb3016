/**
 * The zstd seekable format's seek table (facebook/zstd contrib/seekable_format,
 * shared/spec/osimage-format.md "How oci-os lays out a zstd payload"):
 * one skippable frame listing each data frame's compressed and decompressed
 * size, ending with the seekable magic as the blob's last four bytes.
 */
import { OciError } from '../errors.js';

export const SKIPPABLE_MAGIC = 0x184d2a5e;
export const SEEKABLE_MAGIC = 0x8f92eab1;
const FOOTER_SIZE = 9;

/** Sizes of one data frame of a seekable zstd blob. */
export interface SeekFrame {
  compressedSize: number;
  decompressedSize: number;
}

/** Serializes a seek table (no per-frame checksums). */
export function encodeSeekTable(frames: readonly SeekFrame[]): Buffer {
  const frameSize = frames.length * 8 + FOOTER_SIZE;
  const out = Buffer.alloc(8 + frameSize);
  out.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  out.writeUInt32LE(frameSize, 4);
  let off = 8;
  for (const f of frames) {
    out.writeUInt32LE(f.compressedSize, off);
    out.writeUInt32LE(f.decompressedSize, off + 4);
    off += 8;
  }
  out.writeUInt32LE(frames.length, off);
  out.writeUInt8(0, off + 4);
  out.writeUInt32LE(SEEKABLE_MAGIC, off + 5);
  return out;
}

/** Length of the seek table, read from the last bytes of a blob (at least 9 bytes). */
export function seekTableLength(tail: Buffer): number {
  if (tail.length < FOOTER_SIZE) throw new OciError('INVALID_FORMAT', 'zstd blob too short for a seek table');
  const footer = tail.subarray(tail.length - FOOTER_SIZE);
  if (footer.readUInt32LE(5) !== SEEKABLE_MAGIC) throw new OciError('INVALID_FORMAT', 'zstd blob has no seek table');
  const count = footer.readUInt32LE(0);
  const checksums = (footer.readUInt8(4) & 0x80) !== 0;
  return 8 + count * (checksums ? 12 : 8) + FOOTER_SIZE;
}

/** Parses a seek table (the whole skippable frame). */
export function decodeSeekTable(table: Buffer): SeekFrame[] {
  if (table.length < 8 + FOOTER_SIZE || table.readUInt32LE(0) !== SKIPPABLE_MAGIC) {
    throw new OciError('INVALID_FORMAT', 'seek table does not start with a skippable frame');
  }
  if (table.readUInt32LE(4) !== table.length - 8) throw new OciError('INVALID_FORMAT', 'seek table size does not match its frame header');
  const footer = table.subarray(table.length - FOOTER_SIZE);
  if (footer.readUInt32LE(5) !== SEEKABLE_MAGIC) throw new OciError('INVALID_FORMAT', 'seek table lacks the seekable magic');
  const count = footer.readUInt32LE(0);
  const desc = footer.readUInt8(4);
  if ((desc & 0x7c) !== 0) throw new OciError('INVALID_FORMAT', 'seek table descriptor has reserved bits set');
  const entry = desc & 0x80 ? 12 : 8;
  if (8 + count * entry + FOOTER_SIZE !== table.length) throw new OciError('INVALID_FORMAT', 'seek table frame count does not match its size');
  const frames: SeekFrame[] = [];
  for (let i = 0, off = 8; i < count; i++, off += entry) {
    frames.push({ compressedSize: table.readUInt32LE(off), decompressedSize: table.readUInt32LE(off + 4) });
  }
  return frames;
}
