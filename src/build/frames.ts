/**
 * Reading a payload in fixed-size pieces ("frames"), never more than one
 * frame per call in memory. Files are read with positioned reads straight
 * into the frame buffer; other sources are re-cut with one copy.
 */
import { open } from 'node:fs/promises';
import { fsError } from '../errors.js';

/**
 * Frame buffers handed back by a consumer once it is done with them, so that
 * a long read allocates a handful of buffers instead of one per frame: fresh
 * frames that die after a few frames in flight are promoted to V8's old
 * generation and then only a full collection returns their memory.
 */
export class FramePool {
  private readonly free: Buffer[] = [];
  constructor(readonly frameSize: number, private readonly keep = 8) {}

  /** A buffer of `frameSize` bytes, reused when one was given back. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.frameSize);
  }

  /** Gives a frame (or a shorter view at its start) back; the caller must not touch it afterwards. */
  give(frame: Buffer): void {
    if (frame.byteOffset !== 0 || frame.buffer.byteLength !== this.frameSize || this.free.length >= this.keep) return;
    this.free.push(frame.length === this.frameSize ? frame : Buffer.from(frame.buffer, 0, this.frameSize));
  }
}

/**
 * Yields buffers of exactly `frameSize` bytes (the last may be shorter) from a
 * file, taken from `pool` when one is given (the consumer gives them back).
 */
export async function* readFileFrames(path: string, frameSize: number, pool?: FramePool): AsyncGenerator<Buffer> {
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
