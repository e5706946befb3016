/**
 * The bytes of a blob upload that the registry has not acknowledged yet
 * (distribution-spec, "Pushing a blob in chunks"): pulled from the source on
 * demand, hashed exactly once as they are pulled, and kept until the
 * registry confirms them, so that after a failure at most one chunk has to
 * be sent again. An uploader may read the next chunk ahead while the current
 * one is on the wire ({@link ChunkSource.readAhead}); memory is then bounded
 * by two chunks plus one source piece. Pulled bytes are copied into slabs
 * reused once acknowledged, so that the source's own buffers (compressed
 * frames, file reads) die young and the pending bytes never pile up as old
 * garbage.
 */

import { destroySource } from '../content/capabilities.js';
import type { ByteSource } from '../content/store.js';
import { OciError } from '../errors.js';
import { type Digest, Sha256Counter } from '../oci/digest.js';
import { BufferPool } from '../util/buffer-pool.js';
import { ByteQueue } from '../util/byte-queue.js';
import { GcPacer } from '../util/gc.js';
import type { ChunkBody } from './replay-source.js';

/** Bytes per slab that pending bytes are kept in. */
const SLAB = 1 << 20;

/** Unacknowledged bytes of an upload, starting at {@link offset}. */
export class ChunkSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private readonly hasher = new Sha256Counter();
  /** Pulled, unacknowledged bytes, as views into the slabs. */
  private readonly queue = new ByteQueue();
  private done = false;
  private closed = false;
  private finalDigest?: Digest;
  private readonly pacer = new GcPacer();
  /** The pull under way (a read-ahead), which every other read waits for. */
  private filling?: Promise<void>;
  /** The read of the source under way (by a pull, a skip or a drain), until it settles. */
  private reading?: Promise<IteratorResult<Uint8Array>>;
  /**
   * Why a pull failed. A source that threw has ended as far as its iterator
   * is concerned (next() answers done), so every later read must fail with
   * this, not take the source for complete: a read-ahead's failure is
   * noticed by no one when it happens.
   */
  private failure?: { error: unknown };
  private readonly slabs = new BufferPool(SLAB, 64);
  private slab?: Buffer;
  private slabUsed = 0;
  /** Absolute offset of the first pending byte (= bytes acknowledged). */
  offset = 0;

  constructor(
    private readonly source: ByteSource,
    private readonly maxSize?: number,
    private readonly what = 'blob',
  ) {
    const s = source as Partial<AsyncIterable<Uint8Array> & Iterable<Uint8Array>>;
    if (typeof s[Symbol.asyncIterator] === 'function') this.iterator = s[Symbol.asyncIterator]!();
    else if (typeof s[Symbol.iterator] === 'function') {
      const sync = s[Symbol.iterator]!();
      this.iterator = { next: async () => sync.next() };
    } else throw new OciError('INVALID_ARGUMENT', `${what}: the source is not a stream or iterable of bytes`);
  }

  /** Bytes pulled but not yet acknowledged. */
  get pending(): number {
    return this.queue.length;
  }

  /** Whether the source has ended. */
  get ended(): boolean {
    return this.done;
  }

  /** Bytes pulled from the source so far (= hashed). */
  get pulled(): number {
    return this.hasher.size;
  }

  /** Pulls until at least `n` bytes are pending or the source ends. */
  async fill(n: number): Promise<void> {
    while (this.filling) await this.filling;
    this.throwIfFailed();
    if (this.done || this.queue.length >= n) return;
    const p = this.pull(n)
      .catch((err: unknown) => {
        // The source's own failure, or too many bytes (hashed()).
        this.failure = { error: err };
        throw err;
      })
      .finally(() => {
        if (this.filling === p) this.filling = undefined;
      });
    this.filling = p;
    return p;
  }

  /**
   * Starts pulling until `n` bytes are pending, without waiting: the next
   * read waits for it, and a failure surfaces there (kept, see {@link failure}).
   */
  readAhead(n: number): void {
    this.fill(n).catch(() => undefined);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  private async pull(n: number): Promise<void> {
    if (this.closed) throw new OciError('INTERNAL', `${this.what}: source read after it was closed`);
    while (!this.done && !this.closed && this.queue.length < n) {
      const r = await this.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const b = this.hashed(r.value);
      if (b.length > 0) this.keep(b);
    }
  }

  /** A piece pulled from the source, hashed; fails once the source is longer than expected. */
  private hashed(v: Uint8Array): Buffer {
    const b = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    this.hasher.update(b);
    if (this.maxSize !== undefined && this.hasher.size > this.maxSize) {
      throw new OciError('SIZE_MISMATCH', `${this.what}: more than the expected ${this.maxSize} bytes`);
    }
    return b;
  }

  /** Copies pulled bytes into slabs; consecutive bytes of one slab stay one piece of the queue. */
  private keep(b: Buffer): void {
    for (let off = 0; off < b.length; ) {
      if (!this.slab || this.slabUsed === SLAB) {
        this.slab = this.slabs.take();
        this.slabUsed = 0;
      }
      const n = b.copy(this.slab, this.slabUsed, off);
      this.queue.append(this.slab.subarray(this.slabUsed, this.slabUsed + n));
      this.slabUsed += n;
      off += n;
    }
  }

  /**
   * Reads and hashes the source's first `n` bytes without keeping them (the
   * registry holds them already): the pending bytes then start at `n`.
   * False when the source ends before `n`.
   */
  async skip(n: number): Promise<boolean> {
    if (this.hasher.size > 0) throw new OciError('INTERNAL', `${this.what}: skip after bytes were read`);
    if (this.closed) throw new OciError('INTERNAL', `${this.what}: source read after it was closed`);
    while (this.hasher.size < n) {
      const r = await this.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const b = this.hashed(r.value);
      const over = this.hasher.size - n;
      if (over > 0) this.keep(b.subarray(b.length - over));
    }
    this.offset = n;
    this.pacer.add(n);
    return true;
  }

  /** The first `n` pending bytes (fewer when fewer are pending), as the pieces that hold them, not joined. */
  peek(n: number): ChunkBody {
    return { body: this.queue.pieces(n), length: Math.min(n, this.queue.length) };
  }

  /**
   * Marks `n` pending bytes acknowledged. `reuse`: the request that carried
   * them has been answered, so no socket write can still read them and their
   * slabs can be filled again; after a failed request they are dropped instead.
   */
  ack(n: number, reuse = true): void {
    const pending = this.queue.length;
    if (n < 0 || n > pending) throw new OciError('INTERNAL', `cannot acknowledge ${n} of ${pending} pending bytes`);
    this.pacer.add(n);
    this.offset += n;
    for (const piece of this.queue.shift(n)) {
      // A piece that ends its slab is the slab's last: give the slab back for reuse.
      if (reuse && piece.byteOffset + piece.length === SLAB) this.slabs.give(piece);
    }
  }

  /** Digest of the whole source; only once it has ended. */
  digest(): Digest {
    if (!this.done) throw new OciError('INTERNAL', 'digest asked before the source ended');
    this.finalDigest ??= this.hasher.digest();
    return this.finalDigest;
  }

  /** Total size; only once the source has ended. */
  get size(): number {
    return this.hasher.size;
  }

  /**
   * The pending bytes followed by the rest of the source, hashed as they
   * pass, for a one-shot streamed request body.
   */
  async *drain(): AsyncGenerator<Buffer> {
    while (this.filling) await this.filling;
    this.throwIfFailed();
    if (this.queue.length > 0) {
      this.offset += this.queue.length;
      yield* this.queue.drain();
    }
    // The rest goes out as the source gives it: nothing is held, so nothing is copied into slabs.
    while (!this.done) {
      if (this.closed) throw new OciError('INTERNAL', `${this.what}: source read after it was closed`);
      const r = await this.next();
      if (r.done) {
        this.done = true;
        return;
      }
      const b = this.hashed(r.value);
      this.offset += b.length;
      this.pacer.add(b.length);
      if (b.length > 0) yield b;
    }
  }

  /** The source's next piece. */
  private async next(): Promise<IteratorResult<Uint8Array>> {
    const read = this.iterator.next();
    this.reading = read;
    try {
      return await read;
    } finally {
      if (this.reading === read) this.reading = undefined;
    }
  }

  /**
   * Stops reading the source (releases a file handle or a pipeline). A read
   * under way is not waited for: it may wait on a source that hangs (a
   * registry that stalls), and the failure that closes an upload must reach
   * its caller, not wait with it. A source with a `destroy()` (a stream,
   * see {@link ByteSource}) is destroyed, which ends such a read at once;
   * the source is then asked to stop once no read is under way (an async
   * generator would only queue the request behind it). What such a source
   * does as it stops (a `finally` that closes a file) may then happen after
   * this has returned.
   */
  async close(): Promise<void> {
    if (this.closed || this.done) return;
    this.closed = true;
    destroySource(this.source);
    const stop = async (): Promise<void> => {
      await this.iterator.return?.();
    };
    if (this.reading) void this.reading.then(stop, stop).catch(() => undefined);
    else await stop().catch(() => undefined);
  }
}
