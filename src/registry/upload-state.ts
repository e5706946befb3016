/**
 * What every blob upload (upload.ts) keeps and asks: the session and its
 * newest Location, the source of unacknowledged bytes, the chunk size, the
 * counters of the result, and the requests around the bytes themselves
 * (open, status, cancel, a HEAD for the blob), with the backoff between
 * failures.
 */
import { Readable } from 'node:stream';
import type { ByteSource } from '../content/store.js';
import { describeError, OciError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { formatSize } from '../util/size.js';
import { pushScope, type Scope } from './auth/token-cache.js';
import { ChunkSizer, defaultChunkSizeFor, defaultStreamedChunkSizeFor, isGhcr } from './chunk-sizing.js';
import { ChunkSource } from './chunk-source.js';
import { RegistryError } from './errors.js';
import type { RegistryHttp } from './http.js';
import { ReplaySource } from './replay-source.js';
import type { TransportResponse } from './transport.js';
import { afterGrace, type ChunkedUploadOptions, parseUploadRange, SessionLost, type UploadResult, type UploadSession, wireGraceMs } from './upload-parts.js';

/** The state of one blob upload and its requests; {@link ChunkedUpload} sends the bytes. */
export abstract class UploadState {
  /**
   * The signal of a request with chunk bytes on the wire: it fires a few
   * seconds after the caller's, so that a chunk under way may finish and the
   * session be cancelled at the registry's newest Location (distribution
   * refuses to cancel a session at the Location before a request it had to
   * cut off).
   */
  protected readonly wire: { signal?: AbortSignal; dispose: () => void };
  protected src: ChunkSource | ReplaySource;
  protected location?: URL;
  protected readonly size: ChunkSizer;
  protected readonly scopes: Scope[];
  protected readonly what: string;
  protected failures = 0;
  protected sent = 0;
  protected chunks = 0;
  protected resumes = 0;
  protected restarts = 0;
  protected patched = 0;
  protected mode: 'chunked' | 'monolithic' = 'chunked';
  protected completed?: { digest: Digest; size: number };

  constructor(
    protected readonly http: RegistryHttp,
    protected readonly repository: string,
    source: ByteSource,
    protected readonly options: ChunkedUploadOptions = {},
  ) {
    this.wire = afterGrace(options.signal, wireGraceMs);
    const exp = options.expected;
    if (options.readAt && exp?.size !== undefined) {
      this.src = new ReplaySource(options.readAt, exp.size, options.what ?? 'blob');
      if (source instanceof Readable) source.destroy();
    } else {
      this.src = new ChunkSource(source, exp?.size, options.what ?? 'blob');
    }
    const replay = this.src instanceof ReplaySource;
    const initial = Math.max(1, options.chunkSize ?? (replay ? defaultStreamedChunkSizeFor(http.host) : defaultChunkSizeFor(http.host)));
    // Streamed chunks of the default size grow on a fast link; a size the caller chose stays.
    this.size = new ChunkSizer(
      http.host,
      initial,
      Math.max(initial, options.maxChunkSize ?? 64 * 1024 * 1024),
      replay && options.chunkSize === undefined && !isGhcr(http.host),
    );
    this.scopes = [pushScope(repository)];
    this.what = options.what ?? 'blob';
    if (options.session) this.useSession(options.session);
  }

  /** Bytes sent so far, re-sent ones included. */
  get uploadedBytes(): number {
    return this.sent;
  }

  /** Bytes the registry has acknowledged. */
  get acknowledged(): number {
    return this.src.offset;
  }

  /** The blob's digest when it is known already: the expected one, or ours once the source has ended. */
  protected knownDigest(): Digest | undefined {
    if (this.src instanceof ReplaySource) return this.options.expected!.digest as Digest;
    return this.src.ended ? this.src.digest() : undefined;
  }

  protected result(): UploadResult {
    const { digest, size } = this.completed ?? { digest: this.knownDigest() ?? this.src.digest(), size: this.src.size };
    return {
      digest,
      size,
      uploadedBytes: this.sent,
      resentBytes: Math.max(0, this.sent - size),
      chunks: this.chunks,
      resumes: this.resumes,
      restarts: this.restarts,
      mode: this.mode,
      chunkSize: this.size.size,
    };
  }

  protected checkAborted(): void {
    if (this.options.signal?.aborted) throw new OciError('ABORTED', `upload of ${this.what} was cancelled`);
  }

  protected useSession(s: UploadSession): void {
    this.location = s.location;
    this.size.setMinimum(s.minChunkLength);
  }

  /** `POST /v2/<name>/blobs/uploads/` → 202 + Location. */
  protected async open(): Promise<void> {
    const res = await this.http.send({ method: 'POST', url: `/v2/${this.repository}/blobs/uploads/`, scopes: this.scopes, signal: this.options.signal });
    if (res.status !== 202) throw await this.http.error(res, 'POST');
    const location = this.http.resolveLocation(res);
    const min = Number(res.header('oci-chunk-min-length'));
    await res.body.dump().catch(() => undefined);
    if (!location) throw new OciError('REGISTRY', `${this.http.host} opened an upload without a Location`);
    this.useSession({ location, minChunkLength: Number.isFinite(min) && min > 0 ? min : undefined });
  }

  protected newLocation(res: TransportResponse): void {
    const loc = this.http.resolveLocation(res);
    if (loc) this.location = loc;
  }

  /**
   * A PATCH answered as taken (202, or 201/204 from lenient registries):
   * follows a moved Location and returns the offset the registry reports
   * holding (undefined when it sends no Range). More than the `end` that was
   * sent is a registry fault, not something to resume from.
   */
  protected async takenUpTo(res: TransportResponse, start: number, end: number): Promise<number | undefined> {
    this.newLocation(res);
    const held = parseUploadRange(res.header('range'), start);
    await res.body.dump().catch(() => undefined);
    if (held !== undefined && held > end) throw new OciError('REGISTRY', `${this.http.host} reports ${held} bytes of ${this.what} after ${end} were sent`);
    return held;
  }

  /** `reuse`: see ChunkSource.ack (false when the request that carried the bytes failed). */
  protected progress(n: number, reuse = true): void {
    this.src.ack(n, reuse);
    this.failures = 0;
    this.options.onProgress?.(this.src.offset);
  }

  /** `GET <location>` → bytes the registry holds (undefined when it sends no Range). */
  protected async status(acknowledged = this.src.offset): Promise<number | undefined> {
    const res = await this.http.send({ method: 'GET', url: this.location!, scopes: this.scopes, signal: this.options.signal });
    if (res.status === 204 || res.status === 200) {
      this.newLocation(res);
      await res.body.dump().catch(() => undefined);
      return parseUploadRange(res.header('range'), acknowledged);
    }
    const err = await this.http.error(res, 'GET');
    if (err.hasCode('BLOB_UPLOAD_UNKNOWN', 'BLOB_UPLOAD_INVALID')) throw new SessionLost(err.message, err);
    // A bare 404 is how ECR Public answers every status request: trust our own offset; if the
    // session really is gone, the next PATCH says so.
    if (res.status === 404 || res.status === 405) return undefined;
    throw err;
  }

  /** Continues from the offset the registry holds; fails over to a restart when it lost acknowledged bytes. */
  protected resync(held: number): void {
    if (held < this.src.offset) {
      throw new SessionLost(`${this.http.host} holds ${held} bytes of ${this.what}, fewer than the ${this.src.offset} it acknowledged`);
    }
    if (held > this.src.offset + this.src.pending) {
      throw new OciError('REGISTRY', `${this.http.host} reports ${held} bytes of ${this.what}, more than were sent`);
    }
    if (held > this.src.offset) this.progress(held - this.src.offset, false);
  }

  /** After a failure: wait (backoff / Retry-After), ask the registry where it is, continue from there. */
  protected async recover(cause: unknown): Promise<void> {
    await this.backOff(cause);
    const held = await this.status();
    this.resync(held ?? this.src.offset);
  }

  /** Counts a failure (failing once there were too many in a row) and waits before the next attempt. */
  protected async backOff(cause: unknown): Promise<void> {
    this.failures++;
    if (this.failures > this.http.retry.retries) {
      throw new OciError(
        'RETRIES_EXHAUSTED',
        `upload of ${this.what} to ${this.http.host} failed ${this.failures} times in a row with ${formatSize(this.src.offset)} stored: ${describeError(cause)}`,
        {
          cause,
          hint: 'run the push again: blobs already complete are skipped; --retries raises the number of attempts',
        },
      );
    }
    const retryAfter = cause instanceof RegistryError ? cause.retryAfterMs : undefined;
    await this.http.retry.wait(this.failures - 1, retryAfter, this.options.signal, `upload of ${this.what}: ${describeError(cause)}`);
    this.resumes++;
  }

  /** A request body broken by its source (a file that shrank), not by the network: that error, as is. */
  protected throwSourceFailure(err: unknown): void {
    const failure = this.src instanceof ReplaySource ? this.src.failure : undefined;
    if (failure) throw new OciError(failure.code, failure.message, { cause: err });
  }

  protected verify(digest: Digest): void {
    const exp = this.options.expected;
    if (!exp) return;
    if (exp.size !== undefined && this.src instanceof ChunkSource && this.src.size !== exp.size) {
      throw new OciError('SIZE_MISMATCH', `${this.what}: got ${this.src.size} bytes, expected ${exp.size}`);
    }
    if (digest !== exp.digest) throw new OciError('DIGEST_MISMATCH', `${this.what}: content has digest ${digest}, expected ${exp.digest}`);
  }

  protected async blobExists(digest: string): Promise<boolean> {
    try {
      const res = await this.http.send({ method: 'HEAD', url: `/v2/${this.repository}/blobs/${digest}`, scopes: this.scopes, signal: this.options.signal });
      await res.body.dump().catch(() => undefined);
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** `DELETE <location>`, best effort (the session may already be gone). */
  protected async cancel(): Promise<void> {
    const loc = this.location;
    if (!loc) return;
    this.location = undefined;
    let ok = false;
    try {
      const res = await this.http.send({ method: 'DELETE', url: loc, scopes: this.scopes, retry: false, signal: AbortSignal.timeout(10_000) });
      await res.body.dump().catch(() => undefined);
      ok = res.status >= 200 && res.status < 300;
    } catch {
      // best effort
    }
    if (!ok) this.options.onNotCancelled?.();
  }
}
