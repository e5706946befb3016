/**
 * HTTP(S) transport to one registry: undici connection pools, one per origin,
 * with the registry's TLS
 * settings, redirects followed here (not by undici) so that `Authorization`
 * only ever goes to the origin it is meant for (distribution-spec, "Pulling
 * blobs": a registry may redirect to another host), and socket/TLS failures
 * mapped to OciErrors that name the host.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type * as Tls from 'node:tls';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import { fsError, OciError } from '../errors.js';
import { mapTransportError } from './errors.js';
import { isLoopbackHost } from './reference.js';
import { undiciPool } from './undici-pool.js';

const require = createRequire(import.meta.url);
let tlsModule: typeof Tls | undefined;
/** node:tls, loaded at the first connection: commands that open only local locations never need it. */
const tls = (): typeof Tls => (tlsModule ??= require('node:tls') as typeof Tls);

/** Connection options of a registry; every field has a default. */
/** Default wait for an answer, and between two parts of one, in ms. */
const DEFAULT_TIMEOUT_MS = 300_000;

export interface TransportOptions {
  /** Skip TLS certificate verification (`--insecure`). */
  insecure?: boolean;
  /**
   * PEM file of extra CA certificates to trust (`--ca-file`), added to the
   * default ones: Node's bundled roots, the system bundle (`$SSL_CERT_FILE`
   * or the usual files) and `NODE_EXTRA_CA_CERTS`.
   */
  caFile?: string;
  /** Speak plain HTTP. Default: true for loopback hosts (localhost, 127.0.0.0/8, [::1]), else false. */
  plainHttp?: boolean;
  /** `User-Agent` header. */
  userAgent?: string;
  /** Connect timeout in ms. Default 30000. */
  connectTimeoutMs?: number;
  /** Time to wait for response headers, in ms. Default 300000; never less for a request that completes a blob (TransportRequest.completesBlob). */
  headersTimeoutMs?: number;
  /** Longest pause between response body bytes, in ms. Default 300000. */
  bodyTimeoutMs?: number;
  /** Most redirects followed for one request. Default 10. */
  maxRedirects?: number;
}

/**
 * Request bodies the transport sends: bytes in memory, whole or in parts sent
 * one after the other without being joined (both replayable), or a stream
 * or async iterable (sent once).
 */
export type RequestBody = Buffer | readonly Buffer[] | Readable | AsyncIterable<Buffer>;

/** Whether a body can be sent again (bytes in memory), and its length then. */
export function replayableLength(body: RequestBody | undefined): number | undefined {
  if (body === undefined) return 0;
  if (Buffer.isBuffer(body)) return body.length;
  if (Array.isArray(body)) return (body as readonly Buffer[]).reduce((n, b) => n + b.length, 0);
  return undefined;
}

/** One request. */
export interface TransportRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** `Authorization` value, sent only to {@link authorizedOrigin}. */
  authorization?: string;
  /** The only origin (`scheme://host:port`) that may receive {@link authorization}. Default: the registry's. */
  authorizedOrigin?: string;
  signal?: AbortSignal;
  /** Follow 3xx answers (default true). Stream bodies are never re-sent: their 3xx comes back as is. */
  followRedirects?: boolean;
  /**
   * The request completes a blob upload (`PUT ?digest=`): a registry may
   * check and move the whole blob before it answers, so the answer is
   * awaited at least the default 300 s, whatever headersTimeoutMs says.
   */
  completesBlob?: boolean;
}

/** One response; `body` must be consumed or dumped by the caller. */
export interface TransportResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered (after redirects). */
  url: URL;
  /** First value of a header, by lowercase name. */
  header(name: string): string | undefined;
  /** Set by the retrying layer when this answer was worth retrying and retries ran out: how many were made. */
  retried?: number;
}

/**
 * Where distributions keep the system CA bundle (Debian/Ubuntu/Alpine/Arch,
 * Fedora/RHEL, openSUSE, macOS/BSD): the file a CA added to the OS store
 * (`update-ca-certificates`, `update-ca-trust`) ends up in.
 */
const systemBundles = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/ssl/cert.pem'];

/**
 * The system CA bundle: `$SSL_CERT_FILE` when set (OpenSSL-based tools such
 * as curl and git read it too, so a setup that points them at a bundle
 * covers oci-os as well), else the first of {@link systemBundles} that
 * exists. An unreadable file counts as none, as it does for OpenSSL.
 */
function systemBundle(): string | undefined {
  const env = process.env.SSL_CERT_FILE;
  for (const path of env ? [env] : systemBundles) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      // Not there on this system: try the next one.
    }
  }
  return undefined;
}

let defaultCas: string[] | undefined;

/**
 * What is trusted without `--ca-file`: the OS store (Node only trusts its
 * own copy of Mozilla's list, so a company CA installed on the machine
 * would be refused), or Node's bundled roots where no OS store is found,
 * and `NODE_EXTRA_CA_CERTS` (which an explicit `ca` option would otherwise
 * drop). The OS store already holds the public roots; adding Node's copy
 * too would double the certificates parsed (about 30 ms each set). Read on
 * first use, once per process.
 */
function defaultCaList(): string[] {
  if (defaultCas) return defaultCas;
  const list: string[] = [];
  // Node 22.15+ and 23.10+ can read the OS store itself (the keychain on macOS, the certificate store on Windows).
  const getCACertificates = (tls() as unknown as { getCACertificates?: (type: string) => string[] }).getCACertificates;
  if (getCACertificates && !process.env.SSL_CERT_FILE) {
    try {
      list.push(...getCACertificates('system'));
    } catch {
      // The files below are read instead.
    }
  }
  if (list.length === 0) {
    const sys = systemBundle();
    if (sys) list.push(sys);
    else list.push(...tls().rootCertificates);
  }
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra && existsSync(extra)) list.push(readFileSync(extra, 'utf8'));
  defaultCas = list;
  return list;
}

let defaultContext: Tls.SecureContext | undefined;

/**
 * The TLS context of every connection: {@link defaultCaList}, plus the
 * `caFile` when one is given. One context is shared (per process, or per
 * transport with a `caFile`) so the few hundred certificates are parsed
 * once, not on every TLS handshake as a `ca` option would.
 */
function trustContext(caFile: string | undefined): Tls.SecureContext {
  if (!caFile) return (defaultContext ??= tls().createSecureContext({ ca: defaultCaList() }));
  return tls().createSecureContext({ ca: [...defaultCaList(), readCaFile(caFile)] });
}

/**
 * The PEM text of a `--ca-file`, refused unless it holds a certificate:
 * another file (a key, a typo'd path to something else) would otherwise
 * only show as "unable to verify" at the first TLS connection, with the
 * advice to give the --ca-file that was given.
 */
export function readCaFile(caFile: string): string {
  let pem: string;
  try {
    pem = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw fsError(err, `the CA file ${caFile}`, 'read');
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) {
    throw new OciError('INVALID_ARGUMENT', `the CA file ${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return pem;
}

/** `scheme://host[:port]` as `URL.origin` spells it: `Registry.Example.com:443` gives `https://registry.example.com`. */
export function normalizedOrigin(scheme: 'http' | 'https', host: string): string {
  try {
    return new URL(`${scheme}://${host}`).origin;
  } catch {
    throw new OciError('INVALID_REFERENCE', `"${host}" is not a valid registry host[:port]`);
  }
}

/** First value of a header. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** The transport of one registry host. */
export class Transport {
  /** `host[:port]` of the registry API. */
  readonly host: string;
  /**
   * `http(s)://host[:port]`, spelled as `URL.origin` spells it (host in
   * lower case, default port dropped), since that is what it is compared with.
   */
  readonly origin: string;
  readonly plainHttp: boolean;
  /**
   * One pool per origin (the registry, and hosts its redirects and upload
   * Locations point to), kept for the transport's life. Not an undici Agent:
   * its pool of an origin is closed when that pool's connection count drops
   * to zero, and a connection of the closed pool that ends later is counted
   * against its successor, so after one closed connection (every HEAD ends
   * its connection) each request got a new connection, and a new TLS
   * handshake.
   */
  private readonly pools = new Map<string, UndiciPool>();
  private readonly poolOptions: UndiciPool.Options;
  private readonly userAgent: string;
  private readonly maxRedirects: number;
  private readonly caFile?: string;
  private trust?: Tls.SecureContext;

  constructor(host: string, options: TransportOptions = {}) {
    this.host = host;
    this.plainHttp = options.plainHttp ?? isLoopbackHost(host);
    this.origin = normalizedOrigin(this.plainHttp ? 'http' : 'https', host);
    this.userAgent = options.userAgent ?? 'oci-os';
    this.maxRedirects = options.maxRedirects ?? 10;
    this.caFile = options.caFile;
    this.poolOptions = {
      connect: {
        timeout: options.connectTimeoutMs ?? 30_000,
        rejectUnauthorized: !options.insecure,
      },
      headersTimeout: options.headersTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      bodyTimeout: options.bodyTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      keepAliveTimeout: 30_000,
    };
  }

  /** Resolves a path (or absolute URL) against the registry origin. */
  url(pathOrUrl: string): URL {
    return new URL(pathOrUrl, this.origin);
  }

  private pool(origin: string): UndiciPool {
    let p = this.pools.get(origin);
    if (!p) {
      // The trusted CAs are parsed only once a TLS connection is wanted: plain-HTTP commands never pay for them.
      const options = origin.startsWith('https:')
        ? { ...this.poolOptions, connect: { ...this.poolOptions.connect, secureContext: (this.trust ??= trustContext(this.caFile)) } }
        : this.poolOptions;
      p = new (undiciPool())(origin, options);
      this.pools.set(origin, p);
    }
    return p;
  }

  /**
   * Sends a request, following redirects; never sends `Authorization` to
   * another origin, nor a body: a body (a token request's refresh token, a
   * manifest) is for the origin it was addressed to, so a redirect that would
   * carry one elsewhere is an error.
   */
  async request(req: TransportRequest): Promise<TransportResponse> {
    let url = req.url;
    let method = req.method.toUpperCase();
    let body = req.body;
    const authorizedOrigin = req.authorizedOrigin ?? this.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      if (req.authorization && url.origin === authorizedOrigin) headers.authorization = req.authorization;
      const length = replayableLength(body);
      if (body !== undefined && length !== undefined) headers['content-length'] = String(length);
      else if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH')) headers['content-length'] = '0';
      let res: Dispatcher.ResponseData;
      try {
        res = await this.pool(url.origin).request({
          path: `${url.pathname}${url.search}`,
          method: method as Dispatcher.HttpMethod,
          headers,
          body: (body ?? null) as Dispatcher.RequestOptions['body'],
          signal: req.signal,
          ...(req.completesBlob ? { headersTimeout: Math.max(this.poolOptions.headersTimeout ?? 0, DEFAULT_TIMEOUT_MS) } : {}),
        });
      } catch (err) {
        throw mapTransportError(err, url.host, url.protocol === 'http:');
      }
      const status = res.statusCode;
      const location = headerValue(res.headers, 'location');
      const isRedirect = status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
      if (!isRedirect || !location || req.followRedirects === false || replayableLength(body) === undefined) {
        return { status, headers: res.headers, body: res.body, url, header: (n) => headerValue(res.headers, n) };
      }
      await res.body.dump().catch(() => undefined);
      if (hop >= this.maxRedirects) {
        throw new OciError('REGISTRY', `${req.method} to ${this.host}: more than ${this.maxRedirects} redirects`);
      }
      const next = new URL(location, url);
      if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
        method = method === 'HEAD' ? 'HEAD' : 'GET';
        body = undefined;
      }
      if (body !== undefined && replayableLength(body)! > 0 && next.origin !== url.origin) {
        // Origins hold no user-info or query, so they can be named as they are.
        throw new OciError(
          'REGISTRY',
          `${req.method} to ${url.origin} was redirected (${status}) to another origin, ${next.origin}; a request body is only sent where it was addressed`,
        );
      }
      url = next;
    }
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}
