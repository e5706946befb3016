/**
 * Reading exact byte counts from a stream of chunks, holding no more than
 * the caller asks for (plus the chunk being split).
 */
import { OciError } from '../errors.js';
import { ByteQueue } from '../util/byte-queue.js';

/** A count that is not a whole number of bytes would never be reached (`1.5` loops forever): callers validate theirs, this is the backstop. */
function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new OciError('INTERNAL', `cannot read ${n} bytes: not a byte count`);
}

/** Reads exact byte counts from a stream of chunks. */
export class ByteReader {
  /** Bytes read from the stream and not yet taken. */
  private readonly queue = new ByteQueue();
  private readonly it: AsyncIterator<Uint8Array>;
  private ended = false;
  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }
  /** Buffers at least `n` bytes; false when the stream ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.queue.length < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else this.queue.push(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length));
    }
    return this.queue.length >= n;
  }
  /** The first `n` buffered bytes (call fill first), without consuming them. */
  peek(n: number): Buffer {
    return this.queue.peek(n);
  }
  /** Takes exactly `n` bytes as a list of pieces; throws INVALID_FORMAT (`${what}: ${short}`) on a short stream. */
  async take(n: number, what: string, short: string): Promise<Buffer[]> {
    checkCount(n);
    if (!(await this.fill(n))) throw new OciError('INVALID_FORMAT', `${what}: ${short}`);
    return this.queue.shift(n);
  }

  /**
   * Yields exactly `n` bytes in pieces as they arrive (nothing gathered);
   * throws INVALID_FORMAT on a short stream.
   */
  async *pieces(n: number, what: string, short: string): AsyncGenerator<Buffer> {
    checkCount(n);
    let left = n;
    while (left > 0) {
      if (this.queue.length === 0 && !(await this.fill(1))) throw new OciError('INVALID_FORMAT', `${what}: ${short}`);
      const piece = this.queue.takePiece(left);
      left -= piece.length;
      yield piece;
    }
  }

  /** Whether the stream has ended with nothing buffered. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  async *rest(): AsyncGenerator<Buffer> {
    yield* this.queue.drain();
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    }
  }
  async close(): Promise<void> {
    await this.it.return?.();
  }
}
