/**
 * Bytes that arrive in pieces (stream chunks) and are consumed from the
 * front: the pieces are kept as they came and read in place, so bytes are
 * copied only when one result has to span pieces. Parsers that cut a
 * stream into records (zstd frames, tar headers and entries) hold what they
 * have read ahead here.
 */
import { OciError } from '../errors.js';

export class ByteQueue {
  private parts: Buffer[] = [];
  private queued = 0;

  /** Bytes queued. */
  get length(): number {
    return this.queued;
  }

  /** Appends a piece (kept, not copied); empty pieces are dropped. */
  push(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.queued += b.length;
  }

  /**
   * Appends a piece; when it continues the last piece in the same memory
   * (the next bytes of one reused slab), the two become one piece, so a
   * queue filled in small writes to one slab stays a few pieces long.
   */
  append(b: Buffer): void {
    if (b.length === 0) return;
    const last = this.parts[this.parts.length - 1];
    if (last && last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset) {
      this.parts[this.parts.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + b.length);
      this.queued += b.length;
    } else this.push(b);
  }

  /** The byte at index `i` from the front. */
  byteAt(i: number): number {
    for (const p of this.parts) {
      if (i < p.length) return p[i]!;
      i -= p.length;
    }
    throw new OciError('INTERNAL', 'read past the queued bytes');
  }

  /** The unsigned little-endian integer of `n` bytes (at most 6) at index `i`. */
  uintLE(i: number, n: number): number {
    let v = 0;
    for (let k = n - 1; k >= 0; k--) v = v * 256 + this.byteAt(i + k);
    return v;
  }

  /** Removes the first `n` bytes (at most {@link length}), as the pieces that held them: nothing is copied. */
  shift(n: number): Buffer[] {
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
    this.queued -= n;
    return out;
  }

  /** Removes the first `n` bytes (at most {@link length}) as one buffer, copied only when they span pieces. */
  take(n: number): Buffer {
    const out = this.shift(n);
    return out.length === 1 ? out[0]! : Buffer.concat(out, n);
  }

  /** Removes up to `max` bytes from the first piece, without copying; empty when nothing is queued. */
  takePiece(max: number): Buffer {
    const p = this.parts[0];
    if (!p) return Buffer.alloc(0);
    const piece = p.length <= max ? p : p.subarray(0, max);
    if (piece === p) this.parts.shift();
    else this.parts[0] = p.subarray(max);
    this.queued -= piece.length;
    return piece;
  }

  /**
   * The first `n` bytes (fewer when fewer are queued) as one buffer, left
   * queued. Pieces it has to join are replaced by the joined buffer, so
   * peeking again does not join them again.
   */
  peek(n: number): Buffer {
    const want = Math.min(n, this.queued);
    let count = 0;
    let bytes = 0;
    while (bytes < want) bytes += this.parts[count++]!.length;
    if (count > 1) this.parts.splice(0, count, Buffer.concat(this.parts.slice(0, count), bytes));
    return count === 0 ? Buffer.alloc(0) : this.parts[0]!.subarray(0, want);
  }

  /** The first `n` bytes (fewer when fewer are queued) as the pieces that hold them, left queued and not joined. */
  pieces(n: number): Buffer[] {
    let want = Math.min(n, this.queued);
    const out: Buffer[] = [];
    for (let i = 0; want > 0; i++) {
      const p = this.parts[i]!;
      out.push(p.length <= want ? p : p.subarray(0, want));
      want -= Math.min(p.length, want);
    }
    return out;
  }

  /** Removes every queued piece. */
  drain(): Buffer[] {
    const out = this.parts;
    this.parts = [];
    this.queued = 0;
    return out;
  }
}
