/**
 * The monolithic fallback of a blob upload (distribution-spec, "Pushing a
 * blob monolithically": `PUT <location>?digest=` with the whole body), for
 * registries that refuse PATCH. The body is streamed, never buffered; the
 * digest must be known before the first byte goes out. A streamed body can
 * be sent only once, so a failed PUT is retried only when the caller can
 * `reopen()` the source.
 */
import { Readable } from 'node:stream';
import type { ByteSource } from '../content/store.js';
import { OciError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Scope } from './auth/token-cache.js';
import { ChunkSource } from './chunk-source.js';
import { RegistryError, TransportError } from './errors.js';
import type { RegistryHttp } from './http.js';
import type { TransportResponse } from './transport.js';

/** Appends `digest=` to a Location, keeping its query. */
export function withDigest(location: URL, digest: string): URL {
  const u = new URL(location);
  u.searchParams.append('digest', digest);
  return u;
}

/** Options of {@link monolithicPut}. */
export interface MonolithicPutOptions {
  http: RegistryHttp;
  scopes: readonly Scope[];
  /** Name used in messages. */
  what: string;
  /** The open session to PUT to. */
  location: URL;
  /** Opens a fresh session (for a retry). */
  open: () => Promise<URL>;
  /** Bytes to send: what is pending in it, then the rest of its source. */
  source: ChunkSource;
  /** Digest of the whole blob (required: this is the point of the fallback). */
  digest: string;
  /** Size when known: sent as Content-Length (some registries refuse chunked transfer encoding). */
  size?: number;
  reopen?: () => ByteSource | Promise<ByteSource>;
  signal?: AbortSignal;
  /** Counts body bytes as they go out. */
  onSent: (n: number) => void;
}

/** Result of {@link monolithicPut}. */
export interface MonolithicPutResult {
  digest: Digest;
  size: number;
  /** Times the source was reopened after a failed PUT. */
  restarts: number;
}

async function* counting(it: AsyncIterable<Buffer>, onSent: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const b of it) {
    onSent(b.length);
    yield b;
  }
}

/** Streams the whole blob in one `PUT ?digest=`, retrying through `reopen()` when there is one. */
export async function monolithicPut(o: MonolithicPutOptions): Promise<MonolithicPutResult> {
  const { http } = o;
  let source = o.source;
  let location = o.location;
  try {
    for (let attempt = 0, restarts = 0; ; attempt++) {
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
      if (o.size !== undefined) headers['content-length'] = String(o.size);
      let failure: unknown;
      let res: TransportResponse | undefined;
      try {
        res = await http.send({
          method: 'PUT',
          url: withDigest(location, o.digest),
          body: Readable.from(counting(source.drain(), o.onSent)),
          headers,
          scopes: o.scopes,
          retry: false,
          completesBlob: true,
          signal: o.signal,
        });
      } catch (err) {
        if (source.ended && o.size !== undefined && source.size !== o.size) {
          throw new OciError('SIZE_MISMATCH', `${o.what}: got ${source.size} bytes, expected ${o.size}`, { cause: err });
        }
        if (!(err instanceof TransportError && err.transient)) throw err;
        failure = err;
      }
      if (res) {
        if (res.status === 201 || res.status === 204 || res.status === 200) {
          await res.body.dump().catch(() => undefined);
          return { digest: o.digest as Digest, size: source.size, restarts };
        }
        const err = await http.error(res, 'PUT');
        if (err.hasCode('DIGEST_INVALID') && source.ended && source.digest() !== o.digest) {
          throw new OciError('DIGEST_MISMATCH', `${o.what}: content has digest ${source.digest()}, expected ${o.digest}`, { cause: err });
        }
        if (!http.retry.isRetryableStatus(res.status) && res.status !== 401) throw err;
        failure = err;
      }
      if (!o.reopen || attempt >= http.retry.retries) throw failure;
      await http.retry.wait(
        attempt,
        failure instanceof RegistryError ? failure.retryAfterMs : undefined,
        o.signal,
        `whole-blob upload: ${failure instanceof Error ? failure.message : String(failure)}`,
      );
      await source.close();
      source = new ChunkSource(await o.reopen(), o.size, o.what);
      restarts++;
      location = await o.open();
    }
  } finally {
    // A source this function reopened is its own to close, whatever happened.
    if (source !== o.source) await source.close();
  }
}
