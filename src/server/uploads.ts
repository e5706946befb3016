/**
 * Blob upload sessions (distribution-spec "Pushing blobs"). Each session is a
 * directory `uploads/<id>/` holding the bytes received so far (`data`) and
 * the repository it belongs to (`info.json`). Bytes are streamed to disk and
 * hashed as each write completes, so the running digest always describes
 * exactly the bytes on disk: an interrupted PATCH keeps what arrived and a
 * client can resume from the offset `GET` reports. Sessions are kept in
 * memory and rebuilt from disk (re-hashing `data`) after a restart.
 *
 * Clients abandon sessions (a failed push, a killed process), and each one
 * holds a directory and memory, so sessions idle for longer than a limit are
 * removed, and the number of open sessions is capped.
 */
import { createHash, type Hash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { httpError, internalError, isStorageFull, RegistryHttpError } from './errors.js';
import type { RegistryStorage } from './storage.js';

/** One upload session. `size` and `hash` always describe the bytes in `dataPath`. */
export interface UploadSession {
  readonly id: string;
  readonly name: string;
  readonly dataPath: string;
  size: number;
  hash: Hash;
  /** A chunk shorter than the minimum chunk length was accepted: only PUT may follow. */
  shortChunkSeen: boolean;
  /** Serializes requests on one session. */
  tail: Promise<unknown>;
  /** Set once the session was completed or cancelled. */
  closed?: boolean;
  /** The request currently working on the session. */
  active?: IncomingMessage;
  /** When a request last started, finished or wrote bytes (ms since the epoch). */
  lastActive: number;
  /** Requests holding or waiting for the session; a busy session never expires. */
  pending: number;
}

/** Options of {@link UploadSessions}. Zero or undefined means the default. */
export interface UploadSessionOptions {
  /** A session without any request for this long is removed; default 1 hour. */
  idleMs?: number;
  /** Most sessions open at once; a POST beyond answers 429. Default 1000. */
  maxSessions?: number;
}

/** Default idle time after which an upload session is removed: 1 hour. */
export const defaultUploadIdleMs = 60 * 60 * 1000;
/** Default cap on open upload sessions. */
export const defaultMaxUploadSessions = 1000;
/** `Retry-After` of the 429 sent when every session slot is taken, in seconds. */
const sessionsFullRetryAfter = 60;

/** Limits on chunked uploads. Zero or undefined means "no limit". */
export interface UploadLimits {
  /** Advertised as `OCI-Chunk-Min-Length`; a PATCH after a shorter chunk is refused. */
  chunkMinLength?: number;
  /** A PATCH body larger than this is refused with 413. */
  chunkMaxLength?: number;
}

/** Options of one append. */
export interface AppendOptions {
  /** Offset the client says the bytes start at (`Content-Range` start); must equal the session size. */
  start?: number;
  /** Number of bytes the client announced (`Content-Range` or `Content-Length`). */
  length?: number;
  /** Refuse more bytes than this. */
  maxLength?: number;
}

const idRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The set of open upload sessions of one registry. */
export class UploadSessions {
  private readonly sessions = new Map<string, UploadSession>();
  private readonly idleMs: number;
  private readonly maxSessions: number;
  /** Sessions being created, counted against the cap before they are in `sessions`. */
  private creating = 0;
  private lastSweep = 0;
  private sweeping?: Promise<void>;

  constructor(
    private readonly storage: RegistryStorage,
    options: UploadSessionOptions = {},
  ) {
    this.idleMs = options.idleMs || defaultUploadIdleMs;
    this.maxSessions = options.maxSessions || defaultMaxUploadSessions;
  }

  /** Opens a new, empty session for repository `name`; 429 TOOMANYREQUESTS when the cap is reached. */
  async create(name: string): Promise<UploadSession> {
    // When full, look for idle sessions sooner than usual, but not on every refused POST.
    const full = this.sessions.size + this.creating >= this.maxSessions;
    await this.sweepIfDue(full ? Math.min(this.idleMs, 1000) : undefined);
    if (this.sessions.size + this.creating >= this.maxSessions) {
      throw httpError(
        429,
        'TOOMANYREQUESTS',
        `too many open upload sessions (limit ${this.maxSessions})`,
        { limit: this.maxSessions },
        { 'Retry-After': String(sessionsFullRetryAfter) },
      );
    }
    this.creating++;
    try {
      const id = randomUUID();
      const dir = join(this.storage.uploadsDir, id);
      try {
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'data'), '');
        await writeFile(join(dir, 'info.json'), JSON.stringify({ name }));
      } catch (err) {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        throw err;
      }
      return this.register(id, name, 0, createHash('sha256'));
    } finally {
      this.creating--;
    }
  }

  /** The session `id` of repository `name`; 404 BLOB_UPLOAD_UNKNOWN otherwise (also once it expired). */
  async get(name: string, id: string): Promise<UploadSession> {
    const unknown = (): RegistryHttpError => httpError(404, 'BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
    if (!idRe.test(id)) throw unknown();
    await this.sweepIfDue();
    let session = this.sessions.get(id);
    if (session && this.expired(session, Date.now())) {
      // Expired whether or not its files can be removed now; a later sweep tries again.
      await this.drop(session).catch(() => undefined);
      session = undefined;
    }
    session ??= await this.restore(id);
    if (!session || session.name !== name) throw unknown();
    session.lastActive = Date.now();
    return session;
  }

  private expired(session: UploadSession, now: number): boolean {
    return session.pending === 0 && now - session.lastActive > this.idleMs;
  }

  /**
   * Removes idle sessions when the last sweep is older than `intervalMs`
   * (by default the idle limit, at most a minute), so the work is spread
   * over requests rather than done by a timer. Every directory under
   * uploads/ is looked at, so sessions left by an earlier run (not in
   * memory) go too, judged by when their data was last written.
   */
  private sweepIfDue(intervalMs = Math.min(this.idleMs, 60_000)): Promise<void> {
    const now = Date.now();
    if (!this.sweeping && now - this.lastSweep >= intervalMs) {
      this.lastSweep = now;
      // Requests wait for the sweep, but its failures are not theirs: a
      // session that cannot be removed now is tried again at the next sweep.
      this.sweeping = this.sweep()
        .catch(() => undefined)
        .finally(() => {
          this.sweeping = undefined;
        });
    }
    return this.sweeping ?? Promise.resolve();
  }

  private async sweep(): Promise<void> {
    let ids: string[];
    try {
      ids = await readdir(this.storage.uploadsDir);
    } catch {
      return;
    }
    for (const id of ids) {
      const now = Date.now();
      const session = this.sessions.get(id);
      if (session) {
        if (this.expired(session, now)) await this.drop(session).catch(() => undefined);
        continue;
      }
      if (!idRe.test(id)) continue;
      const dir = join(this.storage.uploadsDir, id);
      try {
        if (now - (await stat(dir)).mtimeMs <= this.idleMs) continue;
        if (now - (await stat(join(dir, 'data'))).mtimeMs <= this.idleMs) continue;
      } catch {
        // No data file (half created or half removed): an old directory goes all the same.
      }
      // Restored meanwhile: that request decides. One that cannot be removed does not stop the sweep.
      if (!this.sessions.has(id)) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async restore(id: string): Promise<UploadSession | undefined> {
    const dir = join(this.storage.uploadsDir, id);
    let name: string;
    try {
      name = (JSON.parse(await readFile(join(dir, 'info.json'), 'utf8')) as { name: string }).name;
      if (Date.now() - (await stat(join(dir, 'data'))).mtimeMs > this.idleMs) {
        await rm(dir, { recursive: true, force: true });
        return undefined;
      }
    } catch {
      return undefined;
    }
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(join(dir, 'data')) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    const existing = this.sessions.get(id);
    if (existing) return existing;
    return this.register(id, name, size, hash);
  }

  /** A session of `size` bytes already in its data file, hashed by `hash`, from now on served. */
  private register(id: string, name: string, size: number, hash: Hash): UploadSession {
    const session: UploadSession = {
      id,
      name,
      dataPath: join(this.storage.uploadsDir, id, 'data'),
      size,
      hash,
      shortChunkSeen: false,
      tail: Promise.resolve(),
      lastActive: Date.now(),
      pending: 0,
    };
    this.sessions.set(id, session);
    return session;
  }

  /** Runs `fn` once every earlier request on the session has finished. */
  locked<T>(session: UploadSession, fn: () => Promise<T>): Promise<T> {
    const guarded = (): Promise<T> => {
      if (session.closed) throw httpError(404, 'BLOB_UPLOAD_UNKNOWN', undefined, { uuid: session.id });
      return fn();
    };
    session.pending++;
    session.lastActive = Date.now();
    const run = session.tail.then(guarded, guarded).finally(() => {
      session.pending--;
      session.lastActive = Date.now();
    });
    session.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs `fn` for `req` with the session to itself. A request still
   * streaming into the session is cut off first: a client only sends a new
   * request for a session after it gave up on the previous one (a stalled
   * connection, a proxy that kept the upstream open), and the bytes that did
   * arrive are kept, so the new request sees the real offset at once.
   */
  exclusive<T>(session: UploadSession, req: IncomingMessage, fn: () => Promise<T>): Promise<T> {
    session.active?.destroy();
    return this.locked(session, async () => {
      session.active = req;
      try {
        return await fn();
      } finally {
        if (session.active === req) session.active = undefined;
      }
    });
  }

  /**
   * Appends a request body to the session (call inside `exclusive`). Out-of-order
   * starts answer 416 with the current `Range`; a body whose length differs
   * from the announced length is rolled back (400 SIZE_INVALID). When the
   * client goes away mid-body, the bytes that did arrive are kept.
   *
   * Every write is checked for the count the file system took: only those
   * bytes are hashed and counted, so `size` and `hash` describe the file even
   * when a write falls short. When the storage fills up, the bytes already on
   * disk are kept and 507 answers with their `Range`, so the client can
   * resume from there once space is freed.
   */
  async append(session: UploadSession, source: Readable, opts: AppendOptions = {}): Promise<number> {
    if (opts.start !== undefined && opts.start !== session.size) {
      throw httpError(
        416,
        'BLOB_UPLOAD_INVALID',
        `chunk starts at ${opts.start}, the upload has ${session.size} bytes`,
        { start: opts.start, size: session.size },
        progressHeaders(session),
      );
    }
    if (opts.maxLength && opts.length !== undefined && opts.length > opts.maxLength) {
      throw httpError(413, 'SIZE_INVALID', `chunk of ${opts.length} bytes exceeds the limit of ${opts.maxLength}`, { limit: opts.maxLength });
    }
    const before = { size: session.size, hash: session.hash.copy() };
    let received = 0;
    let failure: unknown;
    let fh: FileHandle | undefined;
    try {
      fh = await open(session.dataPath, 'r+');
      // Not destroyed when the loop stops early: the answer still goes out on this connection.
      for await (const chunk of source.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        if (opts.maxLength && received + chunk.length > opts.maxLength) {
          throw httpError(413, 'SIZE_INVALID', `chunk exceeds the limit of ${opts.maxLength} bytes`, { limit: opts.maxLength });
        }
        let done = 0;
        while (done < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, session.size);
          // A file system that takes nothing and reports no error is full all the same.
          if (bytesWritten <= 0) throw Object.assign(new Error('write took no bytes'), { code: 'ENOSPC' });
          session.hash.update(chunk.subarray(done, done + bytesWritten));
          session.size += bytesWritten;
          received += bytesWritten;
          done += bytesWritten;
          session.lastActive = Date.now();
        }
      }
    } catch (err) {
      failure = err;
    }
    if (fh) {
      try {
        await fh.close();
      } catch (err) {
        failure ??= err;
      }
    }
    if (isStorageFull(failure)) {
      // The rest of the body is read and dropped so the answer reaches the client.
      source.resume();
      throw internalError(failure, progressHeaders(session));
    }
    if (failure !== undefined && !(failure instanceof RegistryHttpError)) {
      if (!source.destroyed) {
        // Not the client: the bytes on disk may be fewer than counted, so count them again.
        source.resume();
        await this.resync(session).catch(() => undefined);
      }
      throw failure;
    }
    if (failure !== undefined || (opts.length !== undefined && received !== opts.length)) {
      if (!source.readableEnded) source.resume();
      await truncate(session.dataPath, before.size);
      session.size = before.size;
      session.hash = before.hash;
      throw failure ?? httpError(400, 'SIZE_INVALID', `received ${received} bytes, ${opts.length} were announced`, { received, announced: opts.length });
    }
    return received;
  }

  /** Re-reads a session's data so that `size` and `hash` describe exactly the bytes on disk. */
  private async resync(session: UploadSession): Promise<void> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(session.dataPath) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    session.hash = hash;
    session.size = size;
  }

  /**
   * Completes a session: checks the digest of everything received, makes
   * sure the file holds exactly the bytes hashed (its size, flushed to
   * disk), moves it to its content address and links it into the
   * repository. On a mismatch the session is dropped and nothing is stored
   * (400 DIGEST_INVALID).
   */
  async finish(session: UploadSession, digest: string): Promise<void> {
    const actual = `sha256:${session.hash.copy().digest('hex')}`;
    if (actual !== digest) {
      await this.cancel(session);
      throw httpError(400, 'DIGEST_INVALID', `content has digest ${actual}, not ${digest}`, { expected: digest, actual });
    }
    const fh = await open(session.dataPath, 'r+');
    try {
      const onDisk = (await fh.stat()).size;
      if (onDisk !== session.size) {
        // Cannot happen while every write is counted; if it does, the hash is of other bytes.
        await this.resync(session);
        throw httpError(
          400,
          'BLOB_UPLOAD_INVALID',
          `the upload holds ${onDisk} bytes, not the ${session.size} counted`,
          { size: onDisk },
          progressHeaders(session),
        );
      }
      await fh.sync();
    } catch (err) {
      if (isStorageFull(err)) throw internalError(err, progressHeaders(session));
      throw err;
    } finally {
      await fh.close();
    }
    try {
      await this.storage.commitBlob(session.dataPath, session.name, digest);
    } catch (err) {
      if (isStorageFull(err)) throw internalError(err, progressHeaders(session));
      throw err;
    }
    await this.drop(session);
  }

  /** Cancels a session and removes its files. */
  async cancel(session: UploadSession): Promise<void> {
    await this.drop(session);
  }

  private async drop(session: UploadSession): Promise<void> {
    session.closed = true;
    this.sessions.delete(session.id);
    await rm(join(this.storage.uploadsDir, session.id), { recursive: true, force: true });
  }
}

/** `Location`, `Docker-Upload-UUID` and (when anything was received) `Range: 0-<last byte>`. */
export function progressHeaders(session: UploadSession): Record<string, string> {
  const h: Record<string, string> = {
    Location: uploadLocation(session),
    'Docker-Upload-UUID': session.id,
  };
  if (session.size > 0) h.Range = `0-${session.size - 1}`;
  return h;
}

/** Relative URL of an upload session. */
export function uploadLocation(session: UploadSession): string {
  return `/v2/${session.name}/blobs/uploads/${session.id}`;
}
