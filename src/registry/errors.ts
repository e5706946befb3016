/**
 * Registry failures as OciErrors: the registry's structured error list
 * (distribution-spec, "Error Codes"), the HTTP status, the method and a
 * redacted URL, so users see what the registry said without leaking tokens.
 */
import { type ErrorCode, OciError } from '../errors.js';
import { redactCredentials, redactUrl, redactValue } from '../secrets/redact.js';

/** One entry of a registry's `{"errors": [...]}` body. */
export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/** What an error body said: structured entries, or plain text when it was not the spec's JSON. */
export interface ErrorBody {
  errors: RegistryErrorEntry[];
  text?: string;
}

/** Largest error body read (the rest is discarded): Docker Hub's 429 pages and proxies' HTML can be big. */
export const maxErrorBodyBytes = 64 * 1024;

/** Reads at most `cap` bytes of a response body, then discards the rest. Never throws. */
export async function readCapped(body: AsyncIterable<Uint8Array> & { destroy?: () => void }, cap = maxErrorBodyBytes): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body) {
      const b = Buffer.from(chunk);
      if (n + b.length >= cap) {
        parts.push(b.subarray(0, cap - n));
        n = cap;
        body.destroy?.();
        break;
      }
      parts.push(b);
      n += b.length;
    }
  } catch {
    // a body cut short still says what it said so far
  }
  return Buffer.concat(parts, n);
}

/** Parses an error body: the spec's JSON, or the first line(s) of anything else. */
export function parseErrorBody(raw: Buffer | string): ErrorBody {
  const text = (typeof raw === 'string' ? raw : raw.toString('utf8')).trim();
  if (text === '') return { errors: [] };
  try {
    const json = JSON.parse(text) as { errors?: unknown; details?: unknown };
    if (json && Array.isArray(json.errors)) {
      const errors = json.errors
        .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
        .map((e) => ({
          code: typeof e.code === 'string' ? e.code : 'UNKNOWN',
          ...(typeof e.message === 'string' ? { message: e.message } : {}),
          ...(e.detail !== undefined ? { detail: e.detail } : {}),
        }));
      return { errors };
    }
  } catch {
    // not JSON
  }
  const clean = text
    .replace(/<[^>]*>/g, ' ')
    .replace(/[\x00-\x1f\x7f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return { errors: [], text: redactCredentials(clean.length > 300 ? `${clean.slice(0, 300)}…` : clean) };
}

function summarize(body: ErrorBody): string {
  if (body.errors.length > 0) {
    return body.errors
      .map((e) => {
        let s = e.code;
        if (e.message) s += `: ${e.message}`;
        if (e.detail !== undefined && e.detail !== null && e.detail !== '') {
          const d = typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
          s += ` (${d.length > 200 ? `${d.slice(0, 200)}…` : d})`;
        }
        return redactCredentials(s);
      })
      .join('; ');
  }
  return body.text ?? '';
}

/** Options of {@link RegistryError}. */
export interface RegistryErrorInit {
  status: number;
  method: string;
  url: string | URL;
  body?: ErrorBody;
  /** Replaces the generated message. */
  message?: string;
  hint?: string;
  cause?: unknown;
  /** The `Retry-After` the registry sent, in ms, when any. */
  retryAfterMs?: number;
  /** Times the request was sent again before this answer: the answer was one worth retrying, and retries ran out. */
  retried?: number;
}

/**
 * An error answer from a registry. `code` is `AUTH_FAILED` for 401/403,
 * `NOT_FOUND` for 404, else `REGISTRY`. `url` is redacted.
 */
export class RegistryError extends OciError {
  readonly status: number;
  readonly errors: RegistryErrorEntry[];
  readonly method: string;
  readonly url: string;
  readonly bodyText?: string;
  readonly retryAfterMs?: number;

  constructor(init: RegistryErrorInit) {
    const url = redactUrl(init.url);
    const body = init.body ?? { errors: [] };
    const code: ErrorCode =
      init.status === 401 || init.status === 403
        ? 'AUTH_FAILED'
        : init.status === 404
          ? 'NOT_FOUND'
          : init.retried !== undefined
            ? 'RETRIES_EXHAUSTED'
            : 'REGISTRY';
    const said = summarize(body);
    const tries = init.retried !== undefined ? ` (tried ${init.retried + 1} times)` : '';
    const message = `${init.message ?? `${init.method} ${url}: registry answered ${init.status}${said ? ` ${said}` : ''}`}${tries}`;
    super(code, message, { hint: init.hint, cause: init.cause });
    this.name = 'RegistryError';
    this.status = init.status;
    // What a registry echoed (a token in a detail) is kept for code matching, never with its secrets.
    this.errors = redactValue(body.errors);
    this.method = init.method;
    this.url = url;
    this.bodyText = body.text;
    this.retryAfterMs = init.retryAfterMs;
  }

  /** True when one of the registry's error codes is among `codes`. */
  hasCode(...codes: string[]): boolean {
    return this.errors.some((e) => codes.includes(e.code));
  }

  /** Every message and the body text, lowercased, for quirk detection. */
  get allText(): string {
    return [
      ...this.errors.map((e) => `${e.code} ${e.message ?? ''} ${typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail ?? '')}`),
      this.bodyText ?? '',
    ]
      .join(' ')
      .toLowerCase();
  }
}

/**
 * A failure to talk to a host at all (code `NETWORK`) or to establish TLS
 * (code `TLS`). `transient` says whether trying again may help.
 */
export class TransportError extends OciError {
  readonly transient: boolean;
  readonly host: string;
  constructor(code: 'NETWORK' | 'TLS', host: string, message: string, opts: { transient: boolean; hint?: string; cause?: unknown }) {
    super(code, message, { hint: opts.hint, cause: opts.cause });
    this.name = 'TransportError';
    this.transient = opts.transient;
    this.host = host;
  }
}

const tlsCodes = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
]);

/** Maps an error thrown by undici or the socket layer to a {@link TransportError}; other errors pass through. */
export function mapTransportError(err: unknown, host: string, plainHttp: boolean): unknown {
  if (err instanceof OciError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code ?? '';
  const causeCode = e?.cause?.code ?? '';
  const msg = String(e?.message ?? err);
  if (code === 'UND_ERR_ABORTED' || e?.name === 'AbortError') {
    return new OciError('ABORTED', `request to ${host} was cancelled`, { cause: err });
  }
  if (tlsCodes.has(code) || tlsCodes.has(causeCode) || /certificate|ssl|tls/i.test(msg)) {
    const wrongProto = /wrong version number|packet length too long/i.test(msg) || code.startsWith('ERR_SSL_WRONG');
    // OpenSSL's text spans lines and names its source files: the reason is what is shown.
    const reason = /(?:^|:)([a-z][a-z ]+[a-z]):[^:]*\.c:\d+/i.exec(msg)?.[1] ?? msg.split('\n')[0]!.trim();
    return new TransportError('TLS', host, wrongProto ? `${host} does not speak TLS (${reason})` : `TLS connection to ${host} failed: ${reason}`, {
      transient: false,
      cause: err,
      hint: wrongProto ? 'the registry may speak plain HTTP: use --plain-http' : 'trust its CA with --ca-file FILE, or skip verification with --insecure',
    });
  }
  if (!plainHttp && /HPE_|parse/i.test(code)) {
    return new TransportError('NETWORK', host, `unexpected answer from ${host}: ${msg}`, { transient: false, cause: err });
  }
  if (code.startsWith('HPE_') && plainHttp) {
    return new TransportError('NETWORK', host, `${host} did not answer with HTTP: ${msg}`, {
      transient: false,
      cause: err,
      hint: 'the registry may require HTTPS: drop --plain-http',
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
    return new TransportError('NETWORK', host, `cannot resolve registry host ${host}`, {
      transient: code === 'EAI_AGAIN',
      cause: err,
      hint: 'check the host name in the reference and your DNS',
    });
  }
  if (code === 'ECONNREFUSED') {
    return new TransportError('NETWORK', host, `connection to ${host} refused`, {
      transient: true,
      cause: err,
      hint: 'is the registry running and listening on that port?',
    });
  }
  const transientCodes = [
    'ECONNRESET',
    'EPIPE',
    'ETIMEDOUT',
    'ENETUNREACH',
    'EHOSTUNREACH',
    'ECONNABORTED',
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
    'UND_ERR_CLOSED',
  ];
  if (transientCodes.includes(code) || transientCodes.includes(causeCode)) {
    const which = code || causeCode;
    const what =
      which === 'UND_ERR_HEADERS_TIMEOUT'
        ? `${host} did not answer in time`
        : which === 'UND_ERR_BODY_TIMEOUT'
          ? `${host} stopped sending`
          : which === 'UND_ERR_CONNECT_TIMEOUT'
            ? `connecting to ${host} timed out`
            : `connection to ${host} failed: ${which || msg}`;
    return new TransportError('NETWORK', host, what, { transient: true, cause: err });
  }
  return err;
}
