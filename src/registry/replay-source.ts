/**
 * The bytes of a blob upload whose source can be read again from any offset
 * (a file, a blob of a layout, a blob of another registry read with
 * `Range`), and whose size is known. A chunk is streamed straight from the
 * source into the request body and nothing is kept: after a failure the
 * source is read again from the offset the registry holds. So a chunk may be
 * as large as the registry takes (fewer requests, each of which the registry
 * answers only after writing it away) at no cost in memory. Every byte is
 * hashed once, the first time it is read, in the stream that sends it.
 */
import { Readable } from 'node:stream';
import type { ByteSource } from '../content/store.js';
import { fsError, isOciError, OciError } from '../errors.js';
import { type Digest, Sha256Counter } from '../oci/digest.js';
import type { RequestBody } from './transport.js';

/** Opens the blob's bytes from `offset` to its end. */
export type ReadAt = (offset: number) => ByteSource | Promise<ByteSource>;

/** A chunk to send: its body and length. */
export interface ChunkBody {
  body: RequestBody;
  length: number;
}

function iterate(source: ByteSource): AsyncIterator<Uint8Array> {
  const s = source as Partial<AsyncIterable<Uint8Array>>;
  if (typeof s[Symbol.asyncIterator] !== 'function') throw new OciError('INVALID_ARGUMENT', 'the source is not a stream of bytes');
  return s[Symbol.asyncIterator]!();
}

const asBuffer = (v: Uint8Array): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

/** Unacknowledged bytes of an upload from a source that can be read again. */
export class ReplaySource {
  private readonly hasher = new Sha256Counter();
  private finalDigest?: Digest;
  private reader?: { it: AsyncIterator<Uint8Array>; pos: number; rest?: Buffer };
  /** Absolute offset of the first byte the registry has not acknowledged. */
  offset = 0;
  /** Set when the source, not the network, broke the current request body. */
  failure?: OciError;
  /** Pieces are read one at a time: a body torn down mid-read must not interleave with the next one's. */
  private reading: Promise<unknown> = Promise.resolve();
  /** Which body is current; a piece read for an earlier one cannot fail the upload. */
  private body = 0;

  constructor(
    private readonly readAt: ReadAt,
    readonly size: number,
    private readonly what = 'blob',
  ) {}

  /** Bytes not acknowledged yet. */
  get pending(): number {
    return this.size - this.offset;
  }

  /** The size is known, so the end always is. */
  get ended(): boolean {
    return true;
  }

  /** Nothing to read ahead: chunks are read while they are sent. */
  async fill(): Promise<void> {}

  /** The next `n` bytes (fewer at the end) as a body that reads them from the source as it is sent. */
  peek(n: number): ChunkBody {
    const length = Math.min(n, this.pending);
    this.failure = undefined;
    return { body: this.stream(this.offset, length, ++this.body), length };
  }

  /**
   * A stream of bytes [start, start + length). Its end is pushed together
   * with its last piece: the HTTP client then finishes the request as soon
   * as that piece is written, and a registry that answers as soon as it has
   * read it does not find the request still open (which costs the
   * connection: a new one, with a new TLS handshake, for every chunk).
   */
  private stream(start: number, length: number, id: number): Readable {
    let left = length;
    const body: Readable = new Readable({
      read: () => {
        if (left === 0) {
          body.push(null);
          return;
        }
        this.piece(start + length - left, left, id).then(
          (b) => {
            left -= b.length;
            body.push(b);
            if (left === 0) body.push(null);
          },
          (err: unknown) => body.destroy(err as Error),
        );
      },
    });
    return body;
  }

  /** The next piece of at most `max` bytes at `pos` for body `id`, read after any read under way. */
  private piece(pos: number, max: number, id: number): Promise<Buffer> {
    const next = this.reading.then(() => this.readPiece(pos, max, id));
    this.reading = next.catch(() => undefined);
    return next;
  }

  /** Reads a piece, hashed if it goes past what was hashed before. */
  private async readPiece(pos: number, max: number, id: number): Promise<Buffer> {
    if (id !== this.body) throw new OciError('ABORTED', `${this.what}: read for a request that has ended`);
    try {
      let r = this.reader;
      if (!r || r.pos !== pos) {
        await this.closeReader();
        r = this.reader = { it: iterate(await this.readAt(pos)), pos };
      }
      let b = r.rest;
      r.rest = undefined;
      if (!b) {
        const next = await r.it.next();
        if (next.done) throw new OciError('SIZE_MISMATCH', `${this.what}: the source ended after ${r.pos} bytes, expected ${this.size}`);
        b = asBuffer(next.value);
      }
      if (b.length > max) {
        r.rest = b.subarray(max);
        b = b.subarray(0, max);
      }
      const frontier = this.hasher.size;
      if (r.pos + b.length > frontier) this.hasher.update(r.pos >= frontier ? b : b.subarray(frontier - r.pos));
      r.pos += b.length;
      return b;
    } catch (err) {
      const failure = isOciError(err) ? err : fsError(err, this.what, 'read');
      // Only the current body's reads speak for the source; an ended body's are moot.
      if (id === this.body) this.failure = failure;
      throw failure;
    }
  }

  /** Marks `n` bytes acknowledged; the next chunk starts after them. */
  ack(n: number): void {
    if (n < 0 || n > this.pending) throw new OciError('INTERNAL', `cannot acknowledge ${n} of ${this.pending} pending bytes`);
    this.offset += n;
  }

  /** Whether every byte has been read (and hashed) at least once. */
  get complete(): boolean {
    return this.hasher.size === this.size;
  }

  /** Digest of the whole blob, once every byte has been read. */
  digest(): Digest {
    if (!this.complete) throw new OciError('INTERNAL', `digest of ${this.what} asked after ${this.hasher.size} of ${this.size} bytes`);
    this.finalDigest ??= this.hasher.digest();
    return this.finalDigest;
  }

  /** Starts again from byte 0 (a new session); bytes already hashed are not hashed again. */
  rewind(): void {
    this.offset = 0;
  }

  private async closeReader(): Promise<void> {
    const r = this.reader;
    this.reader = undefined;
    await r?.it.return?.().catch(() => undefined);
  }

  /** Releases the source. */
  async close(): Promise<void> {
    await this.closeReader();
  }
}
