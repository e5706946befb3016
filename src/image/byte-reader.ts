/**
 * Reading exact byte counts from a stream of chunks, holding no more than
 * the caller asks for (plus the chunk being split).
 */
import { OciError } from '../errors.js';

/** A count that is not a whole number of bytes would never be reached (`1.5` loops forever): callers validate theirs, this is the backstop. */
function checkCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new OciError('INTERNAL', `cannot read ${n} bytes: not a byte count`);
}

/** Reads exact byte counts from a stream of chunks. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  private ended = false;
  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }
  /** Buffers at least `n` bytes; false when the stream ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
        this.chunks.push(b);
        this.buffered += b.length;
      }
    }
    return this.buffered >= n;
  }
  /** The first `n` buffered bytes (call fill first), without consuming them. */
  peek(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }
  /** Takes exactly `n` bytes as a list of pieces; throws INVALID_FORMAT (`${what}: ${short}`) on a short stream. */
  async take(n: number, what: string, short: string): Promise<Buffer[]> {
    checkCount(n);
    if (!(await this.fill(n))) throw new OciError('INVALID_FORMAT', `${what}: ${short}`);
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const c = this.chunks[0]!;
      if (c.length <= need) {
        out.push(c);
        this.chunks.shift();
        need -= c.length;
      } else {
        out.push(c.subarray(0, need));
        this.chunks[0] = c.subarray(need);
        need = 0;
      }
    }
    this.buffered -= n;
    return out;
  }

  /**
   * Yields exactly `n` bytes in pieces as they arrive (nothing gathered);
   * throws INVALID_FORMAT on a short stream.
   */
  async *pieces(n: number, what: string, short: string): AsyncGenerator<Buffer> {
    checkCount(n);
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw new OciError('INVALID_FORMAT', `${what}: ${short}`);
      const c = this.chunks[0]!;
      const piece = c.length <= left ? c : c.subarray(0, left);
      if (piece === c) this.chunks.shift();
      else this.chunks[0] = c.subarray(left);
      this.buffered -= piece.length;
      left -= piece.length;
      yield piece;
    }
  }

  /** Whether the stream has ended with nothing buffered. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  async *rest(): AsyncGenerator<Buffer> {
    for (const c of this.chunks) yield c;
    this.chunks = [];
    this.buffered = 0;
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

