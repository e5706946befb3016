/**
 * Resumable, adaptive chunked blob upload (distribution-spec, "Pushing a
 * blob in chunks", "Pushing a blob monolithically", "Resuming an upload").
 *
 * The source is read once: every byte is hashed as it is pulled and kept
 * only until the registry acknowledges the chunk it belongs to; the next
 * chunk is read while one is on the wire, so memory is bounded by two chunks
 * and a broken connection costs at most one chunk, re-sent from the offset
 * the registry reports (`GET <location>` → `Range`). The chunk size adapts
 * to what the registry accepts: halved on 413 or a "too large" 416 (GHCR),
 * grown on a "too small" 400 (ECR), never below `OCI-Chunk-Min-Length`.
 *
 * A source that can be read again from any offset, of known size
 * (`readAt`: files, layout blobs), is not held at all: each chunk streams
 * from it into the request (replay-source.ts), and a blob of up to 1 GiB
 * goes in one request (chunk-sizing.ts); a failure reads again from the
 * offset the registry holds.
 *
 * A source that can be produced again (`reopen()`) and whose chunk size
 * nobody chose goes in one streamed PATCH of unknown length, as skopeo and
 * crane send blobs: no chunk is held and the link never waits for a chunk
 * to be committed. After a failure it is produced again and read, not
 * sent, up to the offset the registry holds (see {@link ChunkedUpload.stream}).
 *
 * When a registry refuses PATCH (Google Artifact Registry) the upload falls
 * back to one streamed `PUT ?digest=`, which needs the digest before the
 * first byte is sent. Trade-off: with a known digest (a descriptor) the
 * stream is sent as is; with an unknown digest the source must be readable
 * twice — `reopen()` — and is hashed in a first pass, uploaded in a second;
 * without either the upload fails with a clear message rather than
 * buffering the blob. `reopen()` is also what lets an upload start over when
 * the registry dropped the session (404 BLOB_UPLOAD_UNKNOWN, ACR's
 * BLOB_UPLOAD_INVALID, distribution after a partial PATCH).
 */

import { Readable } from 'node:stream';
import type { ByteSource } from '../content/store.js';
import { OciError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { isGhcr, tooLargeText } from './chunk-sizing.js';
import { ChunkSource } from './chunk-source.js';
import { TransportError } from './errors.js';
import type { RegistryHttp } from './http.js';
import { monolithicPut, withDigest } from './monolithic.js';
import { ReplaySource } from './replay-source.js';
import type { TransportResponse } from './transport.js';
import { type ChunkedUploadOptions, parseUploadRange, SessionLost, type UploadResult } from './upload-parts.js';
import { UploadState } from './upload-state.js';

/** A PATCH answered as taken: 202 as the spec says, 201 or 204 from lenient registries. */
const isTaken = (status: number): boolean => status === 202 || status === 201 || status === 204;

/** One blob upload; call {@link run} once. */
export class ChunkedUpload extends UploadState {
  /** The rest of the blob goes in one streamed PATCH (see {@link stream}). */
  private streaming: boolean;

  constructor(http: RegistryHttp, repository: string, source: ByteSource, options: ChunkedUploadOptions = {}) {
    super(http, repository, source, options);
    this.streaming = this.canStream();
  }

  /** Uploads the whole source and commits the blob. */
  async run(): Promise<UploadResult> {
    try {
      if (!this.location) {
        // The source's first piece is made while the registry opens the session: for a payload
        // built as it is pushed, its first frame read and compressed, for a file its first read.
        if (this.src instanceof ChunkSource) this.src.readAhead(1);
        await this.open();
      }
      for (;;) {
        this.checkAborted();
        try {
          if (this.streaming) {
            await this.stream();
            continue;
          }
          await this.src.fill(this.size.size + 1);
          if (this.src.ended && this.src.pending <= this.size.size) {
            if (await this.finish()) break;
          } else {
            // The next chunk is read (and compressed, for a payload) while this one is on the wire.
            if (this.src instanceof ChunkSource) this.src.readAhead(2 * this.size.size + 1);
            await this.patch();
            if (this.completed) break;
          }
        } catch (err) {
          if (!(err instanceof SessionLost)) throw err;
          const digest = this.knownDigest();
          // Our own digest of a stream that has ended must be the expected one before a blob of that
          // digest can stand for the upload.
          if (digest && this.src instanceof ChunkSource) this.verify(digest);
          if (digest && (await this.blobExists(digest))) break;
          await this.restart(err);
        }
      }
      return this.result();
    } catch (err) {
      await this.cancel();
      throw this.options.signal?.aborted ? new OciError('ABORTED', `upload of ${this.what} was cancelled`, { cause: err }) : err;
    } finally {
      this.wire.dispose();
      await this.src.close();
    }
  }

  /** Sends the next chunk with PATCH and handles every answer. */
  private async patch(): Promise<void> {
    const start = this.src.offset;
    const { body, length } = this.src.peek(this.size.size);
    const began = performance.now();
    let res: TransportResponse;
    try {
      this.sent += length;
      res = await this.http.send({
        method: 'PATCH',
        url: this.location!,
        body,
        scopes: this.scopes,
        retry: false,
        signal: this.wire.signal,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + length - 1}`, 'content-length': String(length) },
      });
    } catch (err) {
      this.throwSourceFailure(err);
      if (err instanceof TransportError && err.transient) {
        // A grown chunk that broke (a proxy may cut large bodies short): back to the size that worked.
        this.size.broke(length);
        return this.recover(err);
      }
      throw err;
    }
    const status = res.status;
    if (isTaken(status)) {
      const end = start + length;
      const held = await this.takenUpTo(res, start, end);
      this.patched++;
      this.chunks++;
      if (held === undefined || held === end) {
        this.size.taken(length, (performance.now() - began) / 1000);
        return this.progress(length);
      }
      // Range lags (ECR): ask for the status before trusting either side.
      const now = await this.status();
      if (now === undefined || now >= end) {
        this.size.taken(length);
        return this.progress(length);
      }
      this.chunks--;
      // Answered as taken, yet nothing of it is held: a failure like any other (counted, backed off).
      if (now === start)
        return this.recover(new OciError('REGISTRY', `${this.http.host} accepted bytes ${start}-${end - 1} of ${this.what} but holds none of them`));
      return this.resync(now);
    }
    const err = await this.http.error(res, 'PATCH');
    const text = err.allText;
    if (status === 413 || (status === 416 && tooLargeText.test(text))) return this.size.shrink(err, length);
    if (status === 416) {
      const held = parseUploadRange(res.header('range'), start) ?? (await this.status());
      if (held === undefined || held === start) return this.size.shrink(err, length);
      return this.resync(held);
    }
    if (status === 400 && /too ?small|layerparttoosmall/.test(text)) return this.size.grow(err, length);
    // A streamed body cannot be answered with a fresh token by the transport: it was renewed, send again.
    if (status === 401 && this.src instanceof ReplaySource) return this.recover(err);
    if (this.patched === 0 && (status === 405 || status === 404 || status === 400 || status === 501)) {
      return this.fallback(status === 404);
    }
    if (this.http.retry.isRetryableStatus(status)) return this.recover(err);
    if (status === 404 || err.hasCode('BLOB_UPLOAD_UNKNOWN', 'BLOB_UPLOAD_INVALID')) throw new SessionLost(err.message, err);
    throw err;
  }

  /** Whether the rest of the blob may go in one streamed PATCH (see {@link stream}). */
  private canStream(): boolean {
    return this.src instanceof ChunkSource && this.options.reopen !== undefined && this.options.chunkSize === undefined && !isGhcr(this.http.host);
  }

  /**
   * One PATCH carrying the rest of the blob as the source produces it, with
   * no Content-Length (chunked transfer encoding), as skopeo, crane and
   * docker push: the link never waits for a chunk to be committed, and
   * nothing is held. The commit (an empty `PUT ?digest=`) follows. After a
   * broken request the source is opened again (`reopen()`) and read, not
   * sent, up to the offset the registry holds; the upload goes on from
   * there. A registry that refuses a PATCH of unknown length gets chunks of
   * known length instead.
   */
  private async stream(): Promise<void> {
    const src = this.src as ChunkSource;
    const start = src.offset;
    let failure: unknown;
    const self = this;
    // Only errors of the source are its failures; the transport's are thrown into the yield.
    async function* body(): AsyncGenerator<Buffer> {
      const it = src.drain();
      try {
        for (;;) {
          let r: IteratorResult<Buffer>;
          try {
            r = await it.next();
          } catch (err) {
            failure = err;
            throw err;
          }
          if (r.done) return;
          self.sent += r.value.length;
          yield r.value;
        }
      } finally {
        await it.return(undefined);
      }
    }
    let res: TransportResponse;
    try {
      res = await this.http.send({
        method: 'PATCH',
        url: this.location!,
        body: Readable.from(body(), { objectMode: false }),
        scopes: this.scopes,
        retry: false,
        signal: this.wire.signal,
        headers: { 'content-type': 'application/octet-stream' },
      });
    } catch (err) {
      if (failure) throw failure;
      if (err instanceof TransportError && err.transient) return this.resumeStream(err, start);
      throw err;
    }
    const status = res.status;
    if (isTaken(status)) {
      const end = src.offset;
      const held = await this.takenUpTo(res, start, end);
      if (!src.ended) return this.resumeStream(new OciError('REGISTRY', `${this.http.host} answered the PATCH of ${this.what} before its end`), start);
      if (held !== undefined && held < end)
        return this.resumeStream(new OciError('REGISTRY', `${this.http.host} holds ${held} of the ${end} bytes of ${this.what} sent`), start);
      this.patched++;
      this.chunks++;
      this.streaming = false;
      this.failures = 0;
      this.options.onProgress?.(end);
      return;
    }
    const err = await this.http.error(res, 'PATCH');
    if (status === 401 || this.http.retry.isRetryableStatus(status)) return this.resumeStream(err, start);
    if (this.patched > 0 && (status === 404 || err.hasCode('BLOB_UPLOAD_UNKNOWN', 'BLOB_UPLOAD_INVALID'))) throw new SessionLost(err.message, err);
    // Refused as a stream (a registry that wants Content-Length, a body limit, no PATCH at all): chunks
    // of known length from where the registry stands, or the whole-blob fallback they lead to.
    this.streaming = false;
    await this.reopenAt((await this.status(start)) ?? start);
  }

  /**
   * After a failed streamed PATCH that started at `start`: wait, ask the
   * registry where it stands, read the source again up to there.
   */
  private async resumeStream(cause: unknown, start: number): Promise<void> {
    await this.backOff(cause);
    const held = await this.status(start);
    // ECR Public tells nothing: start over rather than guess.
    if (held === undefined) throw new SessionLost(`${this.http.host} does not report how much of ${this.what} it holds`, cause);
    await this.reopenAt(held);
  }

  /** A fresh read of the source, its first `offset` bytes read and hashed but not sent again. */
  private async reopenAt(offset: number): Promise<void> {
    await this.src.close();
    const src = new ChunkSource(await this.options.reopen!(), this.options.expected?.size, this.what);
    this.src = src;
    if (!(await src.skip(offset))) throw new SessionLost(`${this.http.host} holds ${offset} bytes of ${this.what}, more than the source now has`);
  }

  /**
   * Final `PUT <location>?digest=` carrying the last chunk. Returns true once
   * the blob is committed. A streamed last chunk is hashed as it is sent, so
   * its URL carries the expected digest and ours is compared after.
   */
  private async finish(): Promise<boolean> {
    const replay = this.src instanceof ReplaySource;
    const digest = replay ? (this.options.expected!.digest as Digest) : this.src.digest();
    if (!replay) this.verify(digest);
    const start = this.src.offset;
    const { body, length } = this.src.peek(this.src.pending);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(length) };
    if (length > 0) headers['content-range'] = `${start}-${start + length - 1}`;
    let res: TransportResponse;
    try {
      this.sent += length;
      res = await this.http.send({
        method: 'PUT',
        url: withDigest(this.location!, digest),
        body,
        headers,
        scopes: this.scopes,
        retry: false,
        completesBlob: true,
        signal: this.wire.signal,
      });
    } catch (err) {
      this.throwSourceFailure(err);
      if (err instanceof TransportError && err.transient) {
        if (await this.blobExists(digest)) return true;
        this.size.broke(length);
        await this.recover(err);
        return false;
      }
      throw err;
    }
    if (this.src instanceof ReplaySource && this.src.complete) {
      try {
        this.verify(this.src.digest());
      } catch (err) {
        await res.body.dump().catch(() => undefined);
        throw err;
      }
    }
    if (res.status === 201 || res.status === 204 || res.status === 200) {
      const echoed = res.header('docker-content-digest');
      await res.body.dump().catch(() => undefined);
      if (echoed && echoed !== digest) {
        throw new OciError('DIGEST_MISMATCH', `${this.http.host} stored ${this.what} as ${echoed}, expected ${digest}`);
      }
      if (length > 0) this.chunks++;
      this.progress(length);
      return true;
    }
    const err = await this.http.error(res, 'PUT');
    if (res.status === 401 && replay) {
      await this.recover(err);
      return false;
    }
    if (length > 0 && (res.status === 413 || (res.status === 416 && tooLargeText.test(err.allText)))) {
      // The last piece is too large for one request (a chunk grown on a fast link, a proxy's body
      // limit): send it in smaller chunks, then commit.
      this.size.shrink(err, length);
      return false;
    }
    if (res.status === 416) {
      const held = parseUploadRange(res.header('range'), start) ?? (await this.status()) ?? start;
      if (held !== start) this.resync(held);
      else await this.recover(err); // no progress: counted and backed off, never a loop
      return false;
    }
    if (this.http.retry.isRetryableStatus(res.status)) {
      if (await this.blobExists(digest)) return true;
      await this.recover(err);
      return false;
    }
    if (res.status === 404 || err.hasCode('BLOB_UPLOAD_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'DIGEST_INVALID')) {
      throw new SessionLost(err.message, err);
    }
    throw err;
  }

  /** Starts over from byte 0 with a fresh session, when the caller can reopen the source. */
  private async restart(lost: SessionLost): Promise<void> {
    const reopen = this.options.reopen;
    if (!reopen && !(this.src instanceof ReplaySource)) {
      throw new OciError(
        'REGISTRY',
        `${this.http.host} dropped the upload session of ${this.what} after ${this.src.offset} bytes (${lost.reason}); the source stream was already consumed and cannot be sent again`,
        {
          cause: lost.original,
          hint: 'retry the push; pushing from a file or layout lets oci-os start over by itself',
        },
      );
    }
    this.restarts++;
    if (this.restarts > this.http.retry.retries) {
      throw new OciError('RETRIES_EXHAUSTED', `upload of ${this.what} to ${this.http.host} restarted ${this.restarts - 1} times: ${lost.reason}`, {
        cause: lost.original,
      });
    }
    await this.cancel();
    if (this.src instanceof ReplaySource) this.src.rewind();
    else {
      await this.src.close();
      this.src = new ChunkSource(await reopen!(), this.options.expected?.size, this.what);
    }
    this.patched = 0;
    this.failures = 0;
    this.streaming = this.canStream();
    this.location = undefined;
    await this.open();
  }

  /**
   * PATCH refused on the first chunk: one streamed `PUT ?digest=` of the
   * whole blob (see the module comment for the digest trade-off).
   */
  private async fallback(newSession: boolean): Promise<void> {
    this.mode = 'monolithic';
    if (newSession) {
      this.location = undefined;
      await this.open();
    }
    let digest = this.options.expected?.digest;
    let size = this.options.expected?.size;
    const readAt = this.options.readAt;
    const reopen = this.src instanceof ReplaySource ? () => readAt!(0) : this.options.reopen;
    let source = this.src instanceof ReplaySource ? new ChunkSource(await readAt!(0), size, this.what) : this.src;
    if (!digest) {
      if (!this.options.reopen) {
        throw new OciError('UNSUPPORTED', `${this.http.host} refuses chunked uploads and the digest of ${this.what} is not known before it has been read`, {
          hint: 'write the artifact to a file or OCI layout first and push that, so it can be hashed before the upload',
        });
      }
      for await (const _ of source.drain()) void _; // first pass: hash only
      digest = source.digest();
      size = source.size;
      source = new ChunkSource(await this.options.reopen(), size, this.what);
    }
    let r;
    try {
      r = await monolithicPut({
        http: this.http,
        scopes: this.scopes,
        what: this.what,
        location: this.location!,
        source,
        digest,
        size,
        reopen,
        signal: this.options.signal,
        open: async () => {
          this.location = undefined;
          await this.open();
          return this.location!;
        },
        onSent: (n) => {
          this.sent += n;
        },
      });
    } finally {
      if (source !== this.src) await source.close();
    }
    this.restarts += r.restarts;
    this.chunks++;
    this.location = undefined;
    this.completed = { digest: r.digest, size: r.size };
    this.options.onProgress?.(r.size);
  }
}
