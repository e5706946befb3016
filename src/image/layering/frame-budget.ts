/**
 * One budget of zstd frames for all the layers of a tree written at once,
 * so that a layered build holds what a single-layer build holds: the same
 * number of frames in flight (defaultZstdFramesInFlight), from one pool of
 * frame buffers, with one collector pacing. A frame takes a slot before
 * its tar is written and gives it back once its compressed bytes have been
 * handed to the store, so the slots bound both the tar frames and their
 * compressed output across every layer.
 *
 * Two layers are written at once (build-layers.ts) so that the compressors
 * stay busy across a layer's end: while one layer's last frames compress
 * and its blob is synced, the next layer fills and compresses frames in
 * the slots the first one gives back. Writing them one at a time instead
 * leaves the compressors idle at each of up to 250 layer ends, and a layer
 * smaller than a frame never compresses in parallel at all.
 */
import { defaultZstdFramesInFlight, zstdCompress } from '../../codec/zstd.js';
import { BufferPool } from '../../util/buffer-pool.js';
import { GcPacer } from '../../util/gc.js';
import { ZSTD_FRAME } from '../compress.js';
import type { ZstdShare } from '../layer.js';

export class FrameBudget implements ZstdShare {
  readonly pool: BufferPool;
  readonly pacer = new GcPacer();
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly slots = defaultZstdFramesInFlight,
    frameSize = ZSTD_FRAME,
  ) {
    this.free = slots;
    this.pool = new BufferPool(frameSize, slots + 1);
  }

  private tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  private acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives a slot back, straight to the layer that has waited longest. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }

  /**
   * zstd frames of `tar` (frames from {@link pool}), compressed on the thread
   * pool and yielded in order, each in a slot of the budget from before its
   * tar is written until it is taken from here. A layer with nothing in
   * flight waits for a slot; one with frames in flight takes only free slots.
   */
  async *compress(tar: AsyncIterable<Buffer>, level: number): AsyncGenerator<Buffer> {
    const it = tar[Symbol.asyncIterator]();
    const inflight: Array<Promise<Buffer>> = [];
    let held = 0;
    let ended = false;
    try {
      for (;;) {
        while (!ended) {
          if (inflight.length === 0) await this.acquire();
          else if (!this.tryAcquire()) break;
          held++;
          const next = await it.next();
          if (next.done) {
            ended = true;
            held--;
            this.release();
            break;
          }
          const frame = next.value;
          inflight.push(zstdCompress(frame, level).finally(() => this.pool.give(frame)));
        }
        if (inflight.length === 0) break;
        const out = await inflight.shift()!;
        yield out;
        held--;
        this.release();
      }
    } finally {
      await Promise.allSettled(inflight);
      for (; held > 0; held--) this.release();
      await it.return?.(undefined);
    }
  }
}
