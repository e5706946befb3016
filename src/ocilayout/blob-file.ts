/**
 * Writing one blob file behind its source, for the layout's blob writer
 * (blobs.ts): gathered writes, two under way at once, background flushes.
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { destroySource } from '../content/capabilities.js';
import type { ByteSource } from '../content/store.js';
import { OciError } from '../errors.js';

/**
 * Writes are at least this large while bytes keep coming (a source that
 * goes quiet has what it gave written after {@link QUIET_MS}), and bytes
 * gathered while a write is under way join the next one, up to
 * {@link MAX_GATHERED}: a blob of hundreds of megabytes takes a few thousand
 * writes, not one per network read, and the source keeps flowing meanwhile.
 */
const MIN_WRITE = 256 << 10;
/** Gathered bytes past which the source waits for the write under way (bounded memory). */
const MAX_GATHERED = 1 << 20;
/** How long gathered bytes wait for more before they are written anyway. */
const QUIET_MS = 2;
/**
 * Bytes written between two background flushes (fdatasync) of a blob being
 * written. The fsync before the rename must wait until every byte is on
 * disk; left to the end, that is the whole blob (most of a second for
 * 500 MiB), while flushes under way let the disk write as the download
 * goes on and leave the last fsync little to do.
 */
const FLUSH_BYTES = 32 << 20;
/** Background flushes under way in this process: at most one, so that they never hold every thread of libuv's pool. */
let flushing = 0;

/** Writes under way at once for one file: one per thread of libuv's pool (2 on 2 cores), so that neither waits for the other to be scheduled. */
const WRITES_AT_ONCE = 2;

/**
 * One blob file being written behind its source: chunks gathered into
 * writes (see {@link MIN_WRITE}), up to {@link WRITES_AT_ONCE} under way
 * (each at its own offset), flushed to disk in the background as the file
 * grows, and fsynced by close().
 */
export class BlobFile {
  private parts: Uint8Array[] = [];
  private gathered = 0;
  private position = 0;
  /** Writes under way; each starts the next one itself when enough was gathered meanwhile. */
  private writes = 0;
  /** Settles when a write under way ends (rejects when it failed); made when someone waits. */
  private ended?: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void };
  /** Why a write failed: every later step throws it. */
  private failure?: { error: unknown };
  private quiet?: NodeJS.Timeout;
  private unflushed = 0;
  private flush?: Promise<void>;
  private closed?: Promise<void>;

  constructor(private readonly fh: FileHandle) {}

  /**
   * Writes everything `content` gives, passing each chunk to `check` first
   * (which throws to stop). A write that fails ends this at once, even while
   * the source is quiet; the source is then let go (Readables destroyed,
   * generators asked to return).
   */
  async writeAll(content: ByteSource, check: (chunk: Uint8Array) => void): Promise<void> {
    // Arrays and other plain iterables are accepted too, as Readable.from accepts them.
    const source = Symbol.asyncIterator in content ? content : Readable.from(content as Iterable<Uint8Array>, { objectMode: false });
    const it = (source as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]();
    let done = false;
    try {
      for (;;) {
        if (this.failure) throw this.failure.error;
        const next = it.next();
        if (this.writes > 0) {
          // Both settle soon (the next write to end), so nothing piles up on either; a failed write rejects at once.
          next.catch(() => undefined);
          await Promise.race([next, this.writeEnded()]);
        }
        const r = await next;
        if (r.done) break;
        const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
        check(chunk);
        if (chunk.length === 0) continue;
        this.parts.push(chunk);
        this.gathered += chunk.length;
        if (this.gathered >= MIN_WRITE) this.startWrite();
        else if (this.writes === 0) this.whenQuiet();
        // Bounded memory: at most MAX_GATHERED waiting, besides the writes under way.
        while (this.gathered >= MAX_GATHERED) await this.writeEnded();
      }
      done = true;
      this.startWrite(true);
      await this.settle();
      this.startWrite(true);
      await this.settle();
    } finally {
      if (this.quiet) clearTimeout(this.quiet);
      if (!done) {
        // A read of the source may be under way (and wait on a response that stalls): destroying the
        // source ends it, where return() would queue behind it.
        destroySource(content);
        it.return?.()?.catch(() => undefined);
      }
    }
  }

  /** Settles when the next write under way ends (at once when none is); rejects when a write failed. */
  private writeEnded(): Promise<void> {
    if (this.writes === 0) return this.failure ? Promise.reject(this.failure.error) : Promise.resolve();
    if (!this.ended) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined);
      this.ended = { promise, resolve, reject };
    }
    return this.ended.promise;
  }

  /** Waits until no write is under way; throws what made one fail. */
  private async settle(): Promise<void> {
    while (this.writes > 0) await this.writeEnded();
    if (this.failure) throw this.failure.error;
  }

  /** Writes what was gathered unless more comes within {@link QUIET_MS}. */
  private whenQuiet(): void {
    if (this.quiet) this.quiet.refresh();
    else {
      this.quiet = setTimeout(() => this.startWrite(true), QUIET_MS);
      this.quiet.unref();
    }
  }

  /** Hands what was gathered to a write, if a write may start: {@link MIN_WRITE} or more, or anything with `any`. */
  private startWrite(any = false): void {
    if (this.gathered === 0 || this.failure || this.writes >= WRITES_AT_ONCE) return;
    if (!any && this.gathered < MIN_WRITE) return;
    const parts = this.parts;
    const length = this.gathered;
    const position = this.position;
    this.parts = [];
    this.gathered = 0;
    this.position += length;
    this.writes++;
    this.writeParts(parts, length, position).then(
      () => {
        this.writes--;
        const ended = this.ended;
        this.ended = undefined;
        ended?.resolve();
        if (this.gathered >= MIN_WRITE) this.startWrite();
        else if (this.gathered > 0 && this.writes === 0) this.whenQuiet();
      },
      (error: unknown) => {
        this.writes--;
        this.failure ??= { error };
        const ended = this.ended;
        this.ended = undefined;
        ended?.reject(error);
      },
    );
  }

  private async writeParts(parts: Uint8Array[], length: number, position: number): Promise<void> {
    let written = (await this.fh.writev(parts, position)).bytesWritten;
    if (written < length) {
      // A short write (rare on a regular file) goes on with what is left.
      const all = Buffer.concat(parts, length);
      while (written < length) {
        const n = (await this.fh.write(all, written, length - written, position + written)).bytesWritten;
        if (n === 0) throw new OciError('INTERNAL', 'a blob write made no progress');
        written += n;
      }
    }
    this.unflushed += length;
    if (this.unflushed >= FLUSH_BYTES && !this.flush && flushing === 0) {
      this.unflushed = 0;
      flushing++;
      this.flush = this.fh
        .datasync()
        .catch(() => undefined) // only a head start: the fsync of close() reports any failure
        .finally(() => {
          flushing--;
          this.flush = undefined;
        });
    }
  }

  /**
   * Waits for the writes and flush under way, fsyncs (with `sync`, for a
   * blob that is kept) and closes. Once, whatever happened before.
   */
  close(sync: boolean): Promise<void> {
    this.closed ??= (async () => {
      try {
        if (this.quiet) clearTimeout(this.quiet);
        // A write that starts the next one is awaited until none is under way.
        while (this.writes > 0) await this.writeEnded().catch(() => undefined);
        await this.flush;
        if (sync && !this.failure) await this.fh.sync();
      } finally {
        await this.fh.close();
      }
    })();
    return this.closed;
  }
}
