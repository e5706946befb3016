/**
 * bcrypt comparisons on worker threads. bcryptjs computes on the thread
 * that calls it, for tens of milliseconds per check; on the thread serving
 * requests a burst of checks stalls every other client. A few workers do
 * the comparisons instead, at most one each at a time; further checks wait
 * in a queue whose length callers can read to refuse work early.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import pLimit, { type LimitFunction } from 'p-limit';

/** Default number of workers: leave a core to the thread serving requests. */
export function defaultBcryptThreads(): number {
  return Math.max(1, Math.min(2, availableParallelism() - 1));
}

/** A small pool of threads comparing passwords with bcrypt hashes. */
export class BcryptPool {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly limit: LimitFunction;
  private closed = false;

  constructor(readonly threads = defaultBcryptThreads()) {
    // Queued comparisons reject on close rather than wait for ever.
    this.limit = pLimit({ concurrency: threads, rejectOnClear: true });
  }

  /** Comparisons running or waiting. */
  get queued(): number {
    return this.limit.activeCount + this.limit.pendingCount;
  }

  /** Whether `password` matches `hash`; rejects when the worker fails or the pool is closed. */
  compare(password: string, hash: string): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error('bcrypt pool closed'));
    return this.limit(() => this.run(password, hash));
  }

  /** Stops every worker; comparisons in progress reject. */
  async close(): Promise<void> {
    this.closed = true;
    this.limit.clearQueue();
    const workers = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private run(password: string, hash: string): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error('bcrypt pool closed'));
    const w = this.idle.pop() ?? this.spawn();
    return new Promise<boolean>((resolve, reject) => {
      const cleanup = (): void => {
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
      };
      const onMessage = (m: { ok?: boolean; error?: string }): void => {
        cleanup();
        if (this.all.has(w)) this.idle.push(w);
        if (m.error !== undefined) reject(new Error(`bcrypt: ${m.error}`));
        else resolve(m.ok === true);
      };
      const onError = (err: Error): void => {
        cleanup();
        this.discard(w);
        reject(err);
      };
      const onExit = (code: number): void => {
        cleanup();
        this.discard(w);
        reject(new Error(`bcrypt worker stopped (exit ${code})`));
      };
      w.on('message', onMessage);
      w.on('error', onError);
      w.on('exit', onExit);
      w.postMessage({ password, hash });
    });
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./bcrypt-worker.js', import.meta.url));
    // An idle pool must not keep the process alive.
    w.unref();
    this.all.add(w);
    return w;
  }

  private discard(w: Worker): void {
    this.all.delete(w);
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    void w.terminate().catch(() => undefined);
  }
}
