import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on `host` (listen on port 0, read the
 * port, close). The port can be taken by someone else before it is used, so
 * callers that start an external server must retry on a bind failure.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A fixed-size text buffer keeping only the last `max` characters written to
 * it; used to keep the tail of a child process's output for error messages.
 */
export class TailBuffer {
  private text = '';
  constructor(private readonly max = 16 * 1024) {}
  /** Appends a chunk, dropping the oldest characters beyond the limit. */
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max) this.text = this.text.slice(this.text.length - this.max);
  }
  /** The last `n` characters (all kept ones by default). */
  tail(n = this.max): string {
    return this.text.slice(Math.max(0, this.text.length - n));
  }
}
