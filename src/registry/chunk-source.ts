/**
 * The bytes of a blob upload that the registry has not acknowledged yet
 * (distribution-spec, "Pushing a blob in chunks"): pulled from the source on
 * demand, hashed exactly once as they are pulled, and kept until the
 * registry confirms them, so that after a failure at most one chunk has to
 * be sent again. Memory is bounded by the chunk size plus one source chunk.
 */
import { OciError } from '../errors.js';
import { GcPacer } from '../util/gc.js';
import { Sha256Counter, type Digest } from '../oci/digest.js';
import type { ByteSource } from '../content/store.js';

/** Unacknowledged bytes of an upload, starting at {@link offset}. */
export class ChunkSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private readonly hasher = new Sha256Counter();
  private parts: Buffer[] = [];
  private length = 0;
  private done = false;
  private closed = false;
  private finalDigest?: Digest;
  private readonly pacer = new GcPacer();
  /** Absolute offset of the first pending byte (= bytes acknowledged). */
  offset = 0;

  constructor(source: ByteSource, private readonly maxSize?: number, private readonly what = 'blob') {
    const s = source as Partial<AsyncIterable<Uint8Array> & Iterable<Uint8Array>>;
    if (typeof s[Symbol.asyncIterator] === 'function') this.iterator = s[Symbol.asyncIterator]!();
    else if (typeof s[Symbol.iterator] === 'function') {
      const sync = s[Symbol.iterator]!();
      this.iterator = { next: async () => sync.next() };
    } else throw new OciError('INVALID_ARGUMENT', `${what}: the source is not a stream or iterable of bytes`);
  }

  /** Bytes pulled but not yet acknowledged. */
  get pending(): number {
    return this.length;
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
    if (this.closed) throw new OciError('INTERNAL', `${this.what}: source read after it was closed`);
    while (!this.done && this.length < n) {
      const r = await this.iterator.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (b.length === 0) continue;
      this.hasher.update(b);
      if (this.maxSize !== undefined && this.hasher.size > this.maxSize) {
        throw new OciError('SIZE_MISMATCH', `${this.what}: more than the expected ${this.maxSize} bytes`);
      }
      this.parts.push(b);
      this.length += b.length;
    }
  }

  /** The first `n` pending bytes (fewer when fewer are pending), as one buffer. */
  peek(n: number): Buffer {
    const want = Math.min(n, this.length);
    if (want === 0) return Buffer.alloc(0);
    if (this.parts[0]!.length >= want) return this.parts[0]!.subarray(0, want);
    const joined = Buffer.concat(this.parts, this.length);
    this.parts = [joined];
    return joined.subarray(0, want);
  }

  /** Marks `n` pending bytes acknowledged. */
  ack(n: number): void {
    if (n < 0 || n > this.length) throw new OciError('INTERNAL', `cannot acknowledge ${n} of ${this.length} pending bytes`);
    this.pacer.add(n);
    this.offset += n;
    this.length -= n;
    while (n > 0) {
      const first = this.parts[0]!;
      if (first.length <= n) {
        this.parts.shift();
        n -= first.length;
      } else {
        this.parts[0] = first.subarray(n);
        n = 0;
      }
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
    while (this.parts.length > 0) {
      const b = this.parts.shift()!;
      this.length -= b.length;
      this.offset += b.length;
      yield b;
    }
    while (!this.done) {
      await this.fill(1);
      const b = this.peek(this.length);
      if (b.length > 0) {
        const copy = b;
        this.ack(b.length);
        yield copy;
      }
    }
  }

  /** Stops reading the source (releases a file handle or a pipeline). */
  async close(): Promise<void> {
    if (!this.done && !this.closed) {
      this.closed = true;
      await this.iterator.return?.().catch(() => undefined);
    }
  }
}
