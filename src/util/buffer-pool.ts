/**
 * Reusable buffers of one size (`take` and `give` may be passed around as
 * plain functions). Buffers that live through a few frames of a
 * long stream are promoted to V8's old generation, and only a full
 * collection (which stalls the thread feeding the compressors) returns their
 * memory; buffers taken from a pool and given back are allocated once.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  /** `size`: bytes per buffer; `keep`: most buffers kept for reuse. */
  constructor(
    readonly size: number,
    private readonly keep = 8,
  ) {}

  /** A buffer of {@link size} bytes, reused when one was given back. */
  take = (): Buffer => this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);

  /**
   * Gives a buffer of this pool back, or any view into one: the whole buffer
   * is reused. The caller must not touch it afterwards.
   */
  give = (view: Buffer): void => {
    const ab = view.buffer;
    if (ab.byteLength !== this.size || this.free.length >= this.keep) return;
    this.free.push(Buffer.from(ab, 0, this.size));
  };
}
