/**
 * Blob upload sessions (distribution-spec "Pushing blobs"). Each session is a
 * directory `uploads/<id>/` holding the bytes received so far (`data`) and
 * the repository it belongs to (`info.json`). Bytes are streamed to disk and
 * hashed as each write completes, so the running digest always describes
 * exactly the bytes on disk: an interrupted PATCH keeps what arrived and a
 * client can resume from the offset `GET` reports. Sessions are kept in
 * memory and rebuilt from disk (re-hashing `data`) after a restart.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { httpError, RegistryHttpError } from './errors.js';
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
}

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

  constructor(private readonly storage: RegistryStorage) {}

  /** Opens a new, empty session for repository `name`. */
  async create(name: string): Promise<UploadSession> {
    const id = randomUUID();
    const dir = join(this.storage.uploadsDir, id);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'data'), '');
    await writeFile(join(dir, 'info.json'), JSON.stringify({ name }));
    const session: UploadSession = {
      id,
      name,
      dataPath: join(dir, 'data'),
      size: 0,
      hash: createHash('sha256'),
      shortChunkSeen: false,
      tail: Promise.resolve(),
    };
    this.sessions.set(id, session);
    return session;
  }

  /** The session `id` of repository `name`; 404 BLOB_UPLOAD_UNKNOWN otherwise. */
  async get(name: string, id: string): Promise<UploadSession> {
    const unknown = (): RegistryHttpError => httpError(404, 'BLOB_UPLOAD_UNKNOWN', undefined, { uuid: id });
    if (!idRe.test(id)) throw unknown();
    const session = this.sessions.get(id) ?? (await this.restore(id));
    if (!session || session.name !== name) throw unknown();
    return session;
  }

  private async restore(id: string): Promise<UploadSession | undefined> {
    const dir = join(this.storage.uploadsDir, id);
    let name: string;
    try {
      name = (JSON.parse(await readFile(join(dir, 'info.json'), 'utf8')) as { name: string }).name;
      await stat(join(dir, 'data'));
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
    const session: UploadSession = {
      id, name, dataPath: join(dir, 'data'), size, hash, shortChunkSeen: false, tail: Promise.resolve(),
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
    const run = session.tail.then(guarded, guarded);
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
   */
  async append(session: UploadSession, source: Readable, opts: AppendOptions = {}): Promise<number> {
    if (opts.start !== undefined && opts.start !== session.size) {
      throw httpError(416, 'RANGE_INVALID', `chunk starts at ${opts.start}, the upload has ${session.size} bytes`,
        { start: opts.start, size: session.size }, progressHeaders(session));
    }
    if (opts.maxLength && opts.length !== undefined && opts.length > opts.maxLength) {
      throw httpError(413, 'SIZE_INVALID', `chunk of ${opts.length} bytes exceeds the limit of ${opts.maxLength}`,
        { limit: opts.maxLength });
    }
    const before = { size: session.size, hash: session.hash.copy() };
    let received = 0;
    const fh = await open(session.dataPath, 'r+');
    const sink = new Writable({
      highWaterMark: 1 << 16,
      write(chunk: Buffer, _enc, cb): void {
        if (opts.maxLength && received + chunk.length > opts.maxLength) {
          cb(httpError(413, 'SIZE_INVALID', `chunk exceeds the limit of ${opts.maxLength} bytes`, { limit: opts.maxLength }));
          return;
        }
        fh.write(chunk, 0, chunk.length, session.size).then(() => {
          session.hash.update(chunk);
          session.size += chunk.length;
          received += chunk.length;
          cb();
        }, cb);
      },
    });
    let failure: unknown;
    try {
      await pipeline(source, sink);
    } catch (err) {
      failure = err;
    } finally {
      await fh.close();
    }
    const clientGone = failure !== undefined && !(failure instanceof RegistryHttpError);
    if (clientGone) throw failure;
    if (failure !== undefined || (opts.length !== undefined && received !== opts.length)) {
      await truncate(session.dataPath, before.size);
      session.size = before.size;
      session.hash = before.hash;
      throw failure ?? httpError(400, 'SIZE_INVALID', `received ${received} bytes, ${opts.length} were announced`,
        { received, announced: opts.length });
    }
    return received;
  }

  /**
   * Completes a session: checks the digest of everything received, moves the
   * data to its content address and links it into the repository. On a
   * mismatch the session is dropped and nothing is stored (400 DIGEST_INVALID).
   */
  async finish(session: UploadSession, digest: string): Promise<void> {
    const actual = `sha256:${session.hash.copy().digest('hex')}`;
    if (actual !== digest) {
      await this.cancel(session);
      throw httpError(400, 'DIGEST_INVALID', `content has digest ${actual}, not ${digest}`, { expected: digest, actual });
    }
    await this.storage.commitBlobFile(session.dataPath, digest);
    await this.storage.linkBlob(session.name, digest);
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
