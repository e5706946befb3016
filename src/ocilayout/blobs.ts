/**
 * The blobs of a layout (`blobs/<alg>/<hex>`) as one writer sees them:
 * written to a temporary file while hashed, verified, fsynced and renamed
 * into place; read back through a check of digest and size. It remembers
 * what this writer added (which an aborted write may remove again) and
 * which blobs it has already hashed.
 */

import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type { ByteSource, StoredBlob } from '../content/store.js';
import { fsError, isOciError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { DigestStream, digestAlgorithm, digestHex, isDigest } from '../oci/digest.js';
import { fileKey, makeDirs } from '../util/fs.js';
import { ownedName, TMP_DIR } from './temporaries.js';

export class LayoutBlobs {
  /** Blobs this writer added, digest → path (removed again by an abort when no one else may use them). */
  readonly added = new Map<string, string>();
  /** `blobs/<alg>` directories this writer created (removed again by an abort when empty). */
  readonly addedDirs = new Set<string>();
  /** Temporary files being written by this writer: an abort removes these and no others. */
  private readonly temps = new Set<string>();
  /**
   * Blobs whose bytes were hashed (or written) by this writer, by digest,
   * with the file they were found in: a blob is hashed at most once while it
   * stays the same file.
   */
  private readonly checked = new Map<string, { file: string; ok: Promise<boolean> }>();

  /** `shownAs`: how failed writes name the layout (see LayoutOptions.shownAs). */
  constructor(
    private readonly dir: string,
    private readonly shownAs: string,
  ) {}

  /** Path of a blob by digest. */
  path(digest: string): string {
    if (!isDigest(digest)) throw new OciError('INVALID_ARGUMENT', `invalid digest "${digest}"`);
    const alg = digest.slice(0, digest.indexOf(':'));
    return join(this.dir, 'blobs', alg, digestHex(digest));
  }

  /**
   * Whether the blob is in place with the right bytes. Callers skip writing
   * a blob that exists, so its size is not enough: a damaged file of the
   * same size would end up tagged. The file is hashed (once per writer
   * while it stays the same file); a mismatch counts as absent, and write()
   * then replaces it atomically.
   */
  async exists(desc: Descriptor): Promise<boolean> {
    let path: string;
    let st: Stats;
    try {
      path = this.path(desc.digest);
      st = await stat(path);
    } catch {
      return false;
    }
    if (!st.isFile() || st.size !== desc.size) return false;
    const file = fileKey(st);
    const cached = this.checked.get(desc.digest);
    if (cached?.file === file) return cached.ok;
    // Read through fetch(), which checks digest and size as it streams.
    const ok = (async () => {
      for await (const _ of await this.fetch(desc)) void _;
      return true;
    })().catch(() => false);
    this.checked.set(desc.digest, { file, ok });
    return ok;
  }

  /** The blob's bytes, checked against its digest and size as they are read. */
  async fetch(desc: Descriptor): Promise<Readable> {
    const path = this.path(desc.digest);
    try {
      await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new OciError('NOT_FOUND', `blob ${desc.digest} is not in layout ${this.dir}`);
      }
      throw fsError(err, path, 'read');
    }
    const verify = new DigestStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}` });
    const src = createReadStream(path, { highWaterMark: 1 << 20 });
    src.on('error', (err) => verify.destroy(fsError(err, path, 'read')));
    // A reader that stops early (a check that failed, a destination that did) destroys verify: the file closes with it.
    verify.once('close', () => src.destroy());
    return src.pipe(verify);
  }

  /** The blob's bytes from `offset` on, unchecked (the caller checks the whole). */
  async readFrom(desc: Descriptor, offset: number): Promise<Readable> {
    const path = this.path(desc.digest);
    const src = createReadStream(path, { start: offset, highWaterMark: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      src.once('open', () => resolve());
      src.once('error', (err) => reject(err));
    }).catch((err: unknown) => {
      throw (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? new OciError('NOT_FOUND', `blob ${desc.digest} is not in layout ${this.dir}`)
        : fsError(err, path, 'read');
    });
    return src;
  }

  /**
   * Writes a blob to a temporary file while hashing it, verifies it, then
   * renames it into place. A `trusted` source (one that fails unless its
   * bytes match `expected`, PushOptions.verifiedSource) is not hashed again;
   * its size is still checked.
   */
  async write(content: ByteSource, expected?: { digest: string; size: number }, trusted = false): Promise<StoredBlob> {
    const tmpDir = join(this.dir, TMP_DIR);
    const tmp = join(tmpDir, ownedName('blob'));
    const what = expected ? `blob ${expected.digest}` : 'blob';
    // A digest that cannot be checked is refused before anything is written.
    const algorithm = expected ? digestAlgorithm(expected.digest, what) : 'sha256';
    const hash = trusted && expected ? undefined : createHash(algorithm);
    this.temps.add(tmp);
    let file: BlobFile | undefined;
    try {
      await makeDirs(tmpDir);
      file = new BlobFile(await open(tmp, 'wx'));
      let size = 0;
      await file.writeAll(content, (chunk) => {
        size += chunk.length;
        if (expected && size > expected.size) throw new OciError('SIZE_MISMATCH', `${what}: more than the expected ${expected.size} bytes`);
        hash?.update(chunk);
      });
      await file.close(true);
      const digest = hash ? `${algorithm}:${hash.digest('hex')}` : expected!.digest;
      if (expected && size !== expected.size) throw new OciError('SIZE_MISMATCH', `${what}: got ${size} bytes, expected ${expected.size}`);
      if (expected && digest !== expected.digest) throw new OciError('DIGEST_MISMATCH', `${what}: content has digest ${digest}, expected ${expected.digest}`);
      const dest = this.path(digest);
      await this.algorithmDir(dirname(dest));
      // Any file already there (even a damaged one now replaced) was not added by this writer, so an abort leaves it.
      const existed = await lstat(dest).then(
        () => true,
        () => false,
      );
      await rename(tmp, dest);
      this.temps.delete(tmp);
      if (!existed) this.added.set(digest, dest);
      const st = await stat(dest).catch(() => undefined);
      if (st) this.checked.set(digest, { file: fileKey(st), ok: Promise.resolve(true) });
      return { digest, size };
    } catch (err) {
      this.temps.delete(tmp);
      // Closed (after the write under way, if any) before it is removed.
      await file?.close(false).catch(() => {});
      await unlink(tmp).catch(() => {});
      if (isOciError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw fsError(err, this.shownAs, 'write');
      throw err;
    }
  }

  /**
   * Creates `blobs/<alg>` on first use: a layout starts with `blobs/sha256`
   * only, and copied content may use another algorithm (sha512).
   */
  private async algorithmDir(dir: string): Promise<void> {
    try {
      await mkdir(dir);
      this.addedDirs.add(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      if (code !== 'ENOENT') throw err;
      // `blobs` itself is gone (an empty layout removed by someone else): made again.
      await makeDirs(dir);
      this.addedDirs.add(dir);
    }
  }

  /** Removes the temporary files of writes still under way (an abort). */
  async removeTemporaries(): Promise<void> {
    for (const tmp of this.temps) await unlink(tmp).catch(() => {});
    this.temps.clear();
  }

  /** Stops remembering what was added: committed, or left to stay. */
  forgetAdded(): void {
    this.added.clear();
    this.addedDirs.clear();
  }
}

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
class BlobFile {
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
      if (!done) it.return?.()?.catch(() => undefined);
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
