/**
 * Tar bytes written in place into frames of a fixed size: headers and
 * padding are copied into the current frame and file content is read
 * straight into it with positioned reads, so every byte of the archive is
 * written once, into the buffer that is handed on (hashed, compressed),
 * with no batching or re-cutting copies. Files are read with synchronous
 * calls, as tar itself does: for the many small files of a root filesystem
 * an open/read/close on the main thread costs a fraction of three
 * round trips through the thread pool, and it leaves the pool to the
 * compressor. Memory: the frame being filled, plus what the caller keeps.
 */
import { OciError } from '../../errors.js';
import { changed, closeSyncQuietly, openSyncForRead, readSyncAt } from '../file-read.js';
import { BLOCK, END_OF_ARCHIVE, encodeTarHeader, paddingFor, type TarEntry } from './header.js';

/** An entry to write, with its content: a file to read (its path as bytes when not UTF-8), or bytes from a stream (files only). */
export interface EntryWithContent {
  entry: TarEntry;
  source?: string | Buffer;
  content?: AsyncIterable<Uint8Array>;
}

/** Gives a buffer of at least the frame size to fill (a fresh one, or one from a pool). */
export type TakeFrame = () => Buffer;

/** The frame being filled (taken when the first byte goes in) and the frames completed but not yet handed on. */
class FrameCursor {
  private current?: Buffer;
  filled = 0;
  readonly ready: Buffer[] = [];

  constructor(
    private readonly size: number,
    private readonly take: TakeFrame,
  ) {}

  /** The frame being filled. */
  get buf(): Buffer {
    return (this.current ??= this.take());
  }

  /** Bytes left in the current frame. */
  get space(): number {
    return this.size - this.filled;
  }

  /** Counts `n` bytes just written at `filled`; completes the frame when it is full. */
  advance(n: number): void {
    this.filled += n;
    if (this.filled === this.size) {
      this.ready.push(this.buf.subarray(0, this.size));
      this.current = undefined;
      this.filled = 0;
    }
  }

  /** Copies bytes in, completing frames as they fill. */
  put(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; ) {
      const n = Math.min(this.space, bytes.length - off);
      this.buf.set(bytes.subarray(off, off + n), this.filled);
      off += n;
      this.advance(n);
    }
  }

  /** Writes `count` zero bytes. */
  zeros(count: number): void {
    while (count > 0) {
      const n = Math.min(this.space, count);
      this.buf.fill(0, this.filled, this.filled + n);
      count -= n;
      this.advance(n);
    }
  }

  /** The last, partly filled frame (undefined when empty). */
  rest(): Buffer | undefined {
    return this.filled > 0 ? this.buf.subarray(0, this.filled) : undefined;
  }
}

/**
 * Yields the bytes of a tar archive holding `entries`, in order, ended by
 * the end-of-archive marker, as frames of exactly `frameSize` bytes (the
 * last may be shorter), each a buffer given by `take`. A frame is not
 * touched again once yielded, so a caller may return it to a pool as soon
 * as it is done with it. File content is read straight into the frames; a
 * file whose size is not the one in its entry fails with INPUT_UNREADABLE.
 */
export async function* tarFrames(
  entries: AsyncIterable<EntryWithContent>,
  frameSize: number,
  take: TakeFrame = () => Buffer.allocUnsafeSlow(frameSize),
): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(frameSize) || frameSize < 1) throw new OciError('INTERNAL', `invalid tar frame size ${frameSize}`);
  const out = new FrameCursor(frameSize, take);
  // Headers are copied into the frame at once: one buffer serves them all.
  const scratch = Buffer.alloc(BLOCK);
  for await (const { entry, source, content } of entries) {
    out.put(encodeTarHeader(entry, scratch));
    if (entry.type === 'file' && entry.size > 0) {
      if (content) {
        let n = 0;
        for await (const c of content) {
          n += c.length;
          if (n > entry.size) throw new OciError('INVALID_FORMAT', `tar entry ${entry.name}: more content than its header's ${entry.size} bytes`);
          out.put(c);
          while (out.ready.length > 0) yield out.ready.shift()!;
        }
        if (n !== entry.size) throw new OciError('INVALID_FORMAT', `tar entry ${entry.name}: ${n} bytes of content, its header says ${entry.size}`);
      } else if (source) {
        const fd = openSyncForRead(source);
        const path = String(source);
        try {
          for (let pos = 0; pos < entry.size; ) {
            while (out.ready.length > 0) yield out.ready.shift()!;
            const n = readSyncAt(fd, path, out.buf, out.filled, Math.min(out.space, entry.size - pos), pos);
            if (n === 0) throw changed(path);
            pos += n;
            out.advance(n);
          }
          // The file must end here: probe one byte past its size into the frame's free space, which
          // later bytes overwrite (a full frame has already been completed, so there is room).
          if (readSyncAt(fd, path, out.buf, out.filled, 1, entry.size) !== 0) throw changed(path);
        } finally {
          closeSyncQuietly(fd);
        }
      } else {
        throw new OciError('INTERNAL', `tar entry ${entry.name} has no content`);
      }
      out.zeros(paddingFor(entry.size));
    }
    while (out.ready.length > 0) yield out.ready.shift()!;
  }
  out.put(END_OF_ARCHIVE);
  while (out.ready.length > 0) yield out.ready.shift()!;
  const last = out.rest();
  if (last) yield last;
}
