/**
 * Blob downloads that survive a broken connection (distribution-spec
 * "Pulling blobs"; RFC 9110 "Range Requests"): when the body stops before
 * the blob's size, the download goes on with a single
 * `Range: bytes=<received>-` request. A `206` must start exactly where the
 * bytes stopped; a `200` (a registry or storage backend that ignores ranges)
 * is accepted by skipping the bytes already delivered. The whole blob is
 * hashed once, across every request, and the stream fails unless digest and
 * size match. A body that is complete by its own Content-Length yet shorter
 * than the descriptor is a wrong descriptor, not a broken connection, and
 * fails at once with SIZE_MISMATCH.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { isOciError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { digestAlgorithm } from '../oci/digest.js';
import { pullScope } from './auth/token-cache.js';
import type { RegistryHttp } from './http.js';
import type { Reference } from './reference.js';
import type { TransportResponse } from './transport.js';

/** Options of {@link fetchBlobResumable}. Zero values mean the defaults. */
export interface ResumableFetchOptions {
  /** Range requests after broken connections, per blob (default: the registry's retry count, 5 unless set). */
  maxResumes?: number;
  signal?: AbortSignal;
  /** Called before each Range request. */
  onResume?: (info: { digest: string; offset: number; attempt: number }) => void;
}

/** Parses `Content-Range: bytes a-b/size`: `a`, and the size unless it is `*`; undefined when it is not that form. */
function parseContentRange(header: string | undefined): { start: number; total?: number } | undefined {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(header?.trim() ?? '');
  return m ? { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) } : undefined;
}

/** The `a` of `Content-Range: bytes a-b/size`, or undefined. */
export function contentRangeStart(header: string | undefined): number | undefined {
  return parseContentRange(header)?.start;
}

/**
 * The blob size a response that ended cleanly after `received` bytes vouches
 * for, or undefined when nothing says its body was complete. A body with
 * exactly its Content-Length (or reaching its Content-Range total) was not
 * cut: if that total is below the descriptor's size, asking again with
 * `Range` only earns a 416 or the same short blob once per retry.
 */
function completeTotal(res: TransportResponse, requested: number, received: number): number | undefined {
  const raw = res.header('content-length');
  const length = raw !== undefined && /^\d+$/.test(raw.trim()) ? Number(raw) : undefined;
  if (res.status === 206) {
    const range = parseContentRange(res.header('content-range'));
    const start = range?.start ?? requested;
    const total = range?.total;
    if (length !== undefined) return received === length ? (total ?? start + length) : undefined;
    return total !== undefined && start + received === total ? total : undefined;
  }
  return length !== undefined && received === length ? length : undefined;
}

/** What a resumable download needs of a repository (RegistryRepository has it). */
export interface BlobEndpoint {
  readonly reference: Pick<Reference, 'registry'>;
  readonly name: string;
  readonly http: RegistryHttp;
}

/**
 * Streams a blob from a repository, resuming with `Range` after a broken
 * connection. The returned stream verifies digest and size and fails with
 * DIGEST_MISMATCH / SIZE_MISMATCH, NOT_FOUND, or the last network error once
 * the resumes are used up: `maxResumes` in a row that gain no byte (a
 * resume that moves the download on starts the count again).
 */
export async function fetchBlobResumable(repo: BlobEndpoint, desc: Descriptor, options: ResumableFetchOptions = {}): Promise<Readable> {
  const what = `${repo.reference.registry}/${repo.name}@${desc.digest}`;
  const size = Number.isInteger(desc.size) && desc.size >= 0 ? desc.size : undefined;
  const maxResumes = options.maxResumes ?? repo.http.retry.retries;
  const url = `/v2/${repo.name}/blobs/${desc.digest}`;
  const scopes = [pullScope(repo.name)];

  const get = async (offset: number): Promise<TransportResponse> => {
    const res = await repo.http.send({
      method: 'GET',
      url,
      scopes,
      signal: options.signal,
      headers: offset > 0 ? { range: `bytes=${offset}-` } : undefined,
    });
    if (res.status === 200 || (offset > 0 && res.status === 206)) return res;
    const err = await repo.http.error(res, 'GET');
    if (res.status === 404) throw new OciError('NOT_FOUND', `${what} not found`, { cause: err });
    throw err;
  };

  // The first request is made here so that "not found" and auth failures surface at once.
  let res = await get(0);
  /** Set once the returned stream is closed: the reader stopped (or the blob is done), nothing more is fetched. */
  let stopped = false;

  /**
   * The blob's bytes, hashed as they pass (no stream of its own for it: one
   * per chunk less on the main thread) and checked at the end.
   */
  async function* body(): AsyncGenerator<Buffer> {
    let offset = 0;
    // Resumes in a row without a byte gained: a link that breaks often but keeps moving never runs out.
    let resumes = 0;
    let total = 0;
    let stalledAt = -1;
    let algorithm = '';
    let hash: Hash | undefined;
    /** The end of the blob: its size and digest must be the descriptor's. */
    const check = (): void => {
      if (size !== undefined && offset !== size) throw new OciError('SIZE_MISMATCH', `${what}: got ${offset} bytes, expected ${size}`);
      const digest = `${algorithm}:${hash!.digest('hex')}`;
      if (digest !== desc.digest) throw new OciError('DIGEST_MISMATCH', `${what}: content has digest ${digest}, expected ${desc.digest}`);
    };
    try {
      // An algorithm that cannot be checked fails the stream at its first read (the response is closed with it).
      algorithm = digestAlgorithm(desc.digest, what);
      hash = createHash(algorithm);
      for (;;) {
        try {
          let skip = 0;
          let received = 0;
          const requested = offset;
          if (offset > 0) {
            if (res.status === 206) {
              const start = contentRangeStart(res.header('content-range'));
              if (start !== offset)
                throw new OciError('REGISTRY', `${what}: asked for bytes from ${offset}, got Content-Range ${res.header('content-range') ?? '(none)'}`);
            } else skip = offset; // 200: the whole blob again
          }
          for await (const piece of res.body as AsyncIterable<Buffer>) {
            let chunk = piece;
            received += chunk.length;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            offset += chunk.length;
            if (size !== undefined && offset > size) throw new OciError('SIZE_MISMATCH', `${what}: more than the expected ${size} bytes`);
            hash.update(chunk);
            yield chunk;
          }
          if (size === undefined || offset >= size) {
            check();
            return;
          }
          const served = completeTotal(res, requested, received);
          if (served !== undefined && served < size) {
            throw new OciError('SIZE_MISMATCH', `${what}: the registry serves ${served} bytes, the descriptor says ${size}`);
          }
          throw new OciError('NETWORK', `${what}: connection ended after ${offset} of ${size} bytes`);
        } catch (err) {
          if (stopped) throw err;
          const resumable = !isOciError(err) || err.code === 'NETWORK';
          if (offset > stalledAt) resumes = 0;
          stalledAt = offset;
          if (!resumable || options.signal?.aborted || resumes >= maxResumes || (size !== undefined && offset >= size)) {
            if (!isOciError(err) && !options.signal?.aborted) {
              throw new OciError('NETWORK', `${what}: download broke off after ${offset} bytes: ${(err as Error).message}`, { cause: err });
            }
            throw err;
          }
          res.body.destroy();
          resumes++;
          total++;
          options.onResume?.({ digest: desc.digest, offset, attempt: total });
          await repo.http.retry.wait(resumes - 1, undefined, options.signal);
          res = await get(offset);
        }
      }
    } finally {
      res.body.destroy();
    }
  }

  // A reader that stops early destroys the stream. The generator can only return once the body it
  // waits on gives a byte, which a stalled registry never does: the response is destroyed at once,
  // so the connection is let go and closing the client does not wait for it.
  const verify = new GeneratorReadable(body(), () => {
    stopped = true;
    res.body.destroy();
  });
  return verify;
}

/**
 * A byte stream over an async generator, like Readable.from, except that
 * destroying it does not wait for the generator to return (which it can
 * only do once the read it waits on settles): `onDestroy` runs at once,
 * and should make that read fail.
 */
class GeneratorReadable extends Readable {
  private pumping = false;
  /** A read asked for while the pump ran: it goes on even if the last push said to stop. */
  private again = false;

  constructor(
    private readonly it: AsyncGenerator<Buffer>,
    private readonly onDestroy: () => void,
  ) {
    super();
  }

  override _read(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        this.again = false;
        const r = await this.it.next();
        if (this.destroyed) return;
        if (r.done) {
          this.push(null);
          return;
        }
        if (!this.push(r.value) && !this.again) return;
      }
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      this.pumping = false;
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.onDestroy();
    this.it.return(undefined).catch(() => undefined);
    cb(err);
  }
}
