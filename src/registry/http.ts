/**
 * Authenticated, retrying requests to one registry: adds `Authorization`
 * for the registry's own origin only, answers `401` challenges once per
 * request, retries connection failures and 408/429/5xx with backoff and
 * `Retry-After` when the body can be sent again, and surfaces `Warning: 299`
 * headers once (distribution-spec, "Warnings").
 */
import { OciError } from '../errors.js';
import { Authenticator, loginHint } from './auth/authenticator.js';
import type { Credentials } from './auth/credentials.js';
import type { Scope, TokenCache } from './auth/token-cache.js';
import { parseErrorBody, RegistryError, readCapped, TransportError } from './errors.js';
import { parseRetryAfter, RetryPolicy } from './retry.js';
import { type RequestBody, replayableLength, Transport, type TransportOptions, type TransportResponse } from './transport.js';

/** Options of {@link RegistryHttp}. */
export interface RegistryHttpOptions extends TransportOptions {
  /** API host (`host[:port]`). */
  host: string;
  /** Loads this registry's credentials (once, when first challenged). */
  credentials: () => Promise<Credentials | undefined>;
  retry?: RetryPolicy;
  tokenCache?: TokenCache;
  /** Called once per distinct `Warning: 299` text. */
  onWarning?: (message: string) => void;
}

/** One request through {@link RegistryHttp.send}. */
export interface SendRequest {
  method: string;
  /** Path on the registry (`/v2/...`) or an absolute URL (upload Locations). */
  url: string | URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Token scopes the request needs. */
  scopes: readonly Scope[];
  /** Retry connection failures and 408/429/5xx. Default: when the body can be re-sent (none or a Buffer). */
  retry?: boolean;
  signal?: AbortSignal;
  followRedirects?: boolean;
  /** See TransportRequest.completesBlob. */
  completesBlob?: boolean;
}

/** Parses `Warning` header values, returning the texts of code-299 warnings. */
export function parseWarnings(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: string[] = [];
  for (const v of values) {
    const re = /(\d{3})\s+\S+\s+"((?:[^"\\]|\\.)*)"/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(v)) !== null) if (m[1] === '299') out.push(m[2]!.replace(/\\(.)/g, '$1'));
  }
  return out;
}

/** Requests to one registry host. Safe for concurrent use. */
export class RegistryHttp {
  readonly host: string;
  readonly transport: Transport;
  readonly auth: Authenticator;
  readonly retry: RetryPolicy;
  private readonly warned = new Set<string>();
  private readonly onWarning?: (message: string) => void;

  constructor(options: RegistryHttpOptions) {
    this.host = options.host;
    this.transport = new Transport(options.host, options);
    this.retry = options.retry ?? new RetryPolicy();
    this.auth = new Authenticator({ host: options.host, credentials: options.credentials, transport: this.transport, tokenCache: options.tokenCache });
    this.onWarning = options.onWarning;
  }

  /** Resolves a path or URL against the registry. */
  url(pathOrUrl: string | URL): URL {
    return typeof pathOrUrl === 'string' ? this.transport.url(pathOrUrl) : pathOrUrl;
  }

  /** True when `url` is on the registry's own origin (the only one that gets credentials). */
  isRegistryOrigin(url: URL): boolean {
    return url.origin === this.transport.origin;
  }

  /**
   * Resolves a `Location` answer against the URL that answered, keeping its
   * query. A Location on the registry's host but with `http:` while the
   * registry speaks https (a TLS-terminating proxy) is moved back to https.
   */
  resolveLocation(res: TransportResponse, location = res.header('location')): URL | undefined {
    if (!location) return undefined;
    const u = new URL(location, res.url);
    if (u.protocol === 'http:' && !this.transport.plainHttp && u.host === new URL(this.transport.origin).host) u.protocol = 'https:';
    return u;
  }

  /**
   * This client, with `signal` cancelling every request that carries no
   * signal of its own (a command's Ctrl-C reaches a HEAD or GET deep in a
   * store, while a clean-up request with its own time limit still goes out).
   * Connections, auth state and tokens are shared with this client.
   */
  withSignal(signal: AbortSignal | undefined): RegistryHttp {
    if (!signal) return this;
    const view = Object.create(this) as RegistryHttp;
    view.send = (req: SendRequest) => this.send(req.signal ? req : { ...req, signal });
    return view;
  }

  /** Sends a request with auth, retries and warnings; the caller handles the status. */
  async send(req: SendRequest): Promise<TransportResponse> {
    const url = this.url(req.url);
    const replayable = replayableLength(req.body) !== undefined;
    const canRetry = req.retry ?? replayable;
    const own = this.isRegistryOrigin(url);
    let authorization = own ? await this.auth.prepare(req.scopes, req.signal) : undefined;
    let reauths = 0;
    for (let attempt = 0; ; ) {
      if (req.signal?.aborted) throw new OciError('ABORTED', `${req.method} to ${this.host} was cancelled`);
      let res: TransportResponse;
      try {
        res = await this.transport.request({
          method: req.method,
          url,
          headers: req.headers,
          body: req.body,
          authorization,
          signal: req.signal,
          followRedirects: req.followRedirects,
          completesBlob: req.completesBlob,
        });
      } catch (err) {
        if (canRetry && err instanceof TransportError && err.transient && attempt < this.retry.retries) {
          await this.retry.wait(attempt++, undefined, req.signal, `${req.method} ${err.message}`);
          continue;
        }
        throw err;
      }
      this.warn(res);
      if (res.status === 401 && own && res.url.origin === url.origin && reauths < 2 && replayable) {
        await res.body.dump().catch(() => undefined);
        authorization = await this.auth.respond(res.headers['www-authenticate'], req.scopes, authorization, req.signal);
        reauths++;
        continue;
      }
      if (res.status === 401 && own && !replayable) {
        // The body cannot be sent again, but the caller may restart it: make sure it gets a fresh token.
        await this.auth.respond(res.headers['www-authenticate'], req.scopes, authorization, req.signal).catch(() => undefined);
        return res;
      }
      const retryAfter = parseRetryAfter(res.header('retry-after'));
      const retryable = this.retry.isRetryableStatus(res.status) || (res.status === 403 && retryAfter !== undefined);
      if (canRetry && retryable && attempt < this.retry.retries) {
        await res.body.dump().catch(() => undefined);
        await this.retry.wait(attempt++, retryAfter, req.signal, `${req.method} answered HTTP ${res.status}`);
        continue;
      }
      if (canRetry && retryable) res.retried = attempt;
      return res;
    }
  }

  /** Reads an error answer (capped) and makes the RegistryError to throw. */
  async error(res: TransportResponse, method: string, opts: { hint?: string; message?: string } = {}): Promise<RegistryError> {
    const body = method === 'HEAD' ? { errors: [] } : parseErrorBody(await readCapped(res.body));
    if (method === 'HEAD') await res.body.dump().catch(() => undefined);
    let hint =
      opts.hint ?? (res.status === 401 ? loginHint : res.status === 403 ? 'the account lacks access to this repository (push needs write access)' : undefined);
    if (!hint && res.status === 400 && this.transport.plainHttp && (method === 'HEAD' || /https/i.test(body.text ?? ''))) {
      hint = 'the registry may speak HTTPS only: plain HTTP is the default for loopback hosts, turn it off (--no-plain-http)';
    }
    return new RegistryError({
      status: res.status,
      method,
      url: res.url,
      body,
      hint,
      message: opts.message,
      retryAfterMs: parseRetryAfter(res.header('retry-after')),
      retried: res.retried,
    });
  }

  private warn(res: TransportResponse): void {
    if (!this.onWarning) return;
    for (const w of parseWarnings(res.headers.warning)) {
      if (this.warned.has(w)) continue;
      this.warned.add(w);
      this.onWarning(w);
    }
  }

  /** Closes every connection to the registry. */
  close(): Promise<void> {
    return this.transport.close();
  }
}
