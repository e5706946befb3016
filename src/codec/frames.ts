/**
 * Reading a payload in fixed-size pieces ("frames"), never more than one
 * frame per call in memory. Files are read with positioned reads straight
 * into the frame buffer; other sources are re-cut with one copy.
 */
import { open } from 'node:fs/promises';
import { fsError } from '../errors.js';
import type { BufferPool } from '../util/buffer-pool.js';

/**
 * Yields buffers of exactly `frameSize` bytes (the last may be shorter) from a
 * file, taken from `pool` when one is given (the consumer gives them back).
 */
export async function* readFileFrames(path: string, frameSize: number, pool?: BufferPool): AsyncGenerator<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw fsError(err, path, 'read');
  }
  try {
    let pos = 0;
    for (;;) {
      const buf = pool?.take() ?? Buffer.allocUnsafeSlow(frameSize);
      let filled = 0;
      while (filled < frameSize) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, filled, frameSize - filled, pos));
        } catch (err) {
          throw fsError(err, path, 'read');
        }
        if (n === 0) break;
        filled += n;
        pos += n;
      }
      if (filled === 0) return;
      yield filled === frameSize ? buf : buf.subarray(0, filled);
      if (filled < frameSize) return;
    }
  } finally {
    await fh.close();
  }
}

/** Re-cuts any byte stream into buffers of exactly `frameSize` bytes (the last may be shorter). */
export async function* recutFrames(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, frameSize: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafeSlow(frameSize);
  let filled = 0;
  for await (const piece of source) {
    let off = 0;
    while (off < piece.length) {
      const n = Math.min(frameSize - filled, piece.length - off);
      buf.set(piece.subarray(off, off + n), filled);
      filled += n;
      off += n;
      if (filled === frameSize) {
        yield buf;
        buf = Buffer.allocUnsafeSlow(frameSize);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buf.subarray(0, filled);
}
