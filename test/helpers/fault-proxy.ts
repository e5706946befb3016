import { readFileSync } from 'node:fs';
import {
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/** What a rule or hook sees of a request before it is forwarded. */
export interface FaultRequestInfo {
  /** Which listener took it: `main` (`proxy.url`) or `other` (`proxy.otherUrl`, 127.0.0.2). */
  listener: 'main' | 'other';
  method: string;
  /** Path without the query. */
  path: string;
  /** Query string without `?` ('' when none). */
  query: string;
  headers: IncomingMessage['headers'];
  /** Parsed `Content-Length`, undefined when absent (e.g. chunked). */
  contentLength?: number;
}

/** What the proxy does with a matched request. */
export type FaultAction =
  /** Forward as usual (a hook's way to say "no fault"). */
  | { type: 'pass' }
  /**
   * Forward, but after `afterBytes` bytes of the request body (default 0)
   * abort the upstream request and destroy the client socket (TCP RST when
   * possible) without answering. The upstream sees a partial upload. A body
   * shorter than `afterBytes` is forwarded whole, the upstream's answer is
   * dropped and both sides are cut (the "lost answer" case).
   */
  | { type: 'reset'; afterBytes?: number }
  /**
   * Forward, and destroy the client socket after `afterBytes` bytes of the
   * response body were sent (headers already went out).
   */
  | { type: 'resetResponse'; afterBytes?: number }
  /**
   * Forward, and after `afterBytes` bytes of the response body were sent,
   * send nothing more while keeping the connection open (a registry that
   * hangs mid-download) until the client goes or the proxy stops.
   */
  | { type: 'stallResponse'; afterBytes?: number }
  /**
   * Answer without forwarding. The request body is read and discarded first
   * unless `early` is true (then the answer goes out at once).
   */
  | { type: 'respond'; status: number; headers?: Record<string, string>; body?: string | Buffer | object; early?: boolean }
  /**
   * Answer 401 with the `WWW-Authenticate` challenge the upstream gives for
   * `GET /v2/` (fetched once), as if the token had expired. For Bearer
   * challenges a `scope` for the request's repository is added unless
   * `withScope` is false. Not forwarded.
   */
  | { type: 'unauthorized'; withScope?: boolean }
  /**
   * Forward, then change the answer: `status` replaces the status when the
   * upstream answered `ifStatus` (any when unset); `removeHeaders` are
   * dropped; `setHeaders` are set.
   */
  | { type: 'rewrite'; ifStatus?: number; status?: number; removeHeaders?: string[]; setHeaders?: Record<string, string> }
  /** Wait `ms` milliseconds, then forward. */
  | { type: 'delay'; ms: number };

/** A fault rule; see {@link FaultProxy.addRule}. */
export interface FaultRule {
  /** HTTP method to match (case-insensitive); any when unset. */
  method?: string;
  /** Regex tested against the path (no query); any when unset. */
  path?: RegExp;
  /** Extra condition on the request. */
  when?: (req: FaultRequestInfo) => boolean;
  /** Listener to match: `main`, `other` or `any` (default). */
  listener?: 'main' | 'other' | 'any';
  /** Matching requests to let through before the rule fires. Default 0. */
  skip?: number;
  /** Fire first at the nth matching request (1-based); same as `skip: nth - 1`. */
  nth?: number;
  /** How many times the rule fires; default 1; `Infinity` for always. */
  times?: number;
  /** What to do. */
  action: FaultAction;
}

/** One request the proxy saw. */
export interface FaultLogEntry {
  listener: 'main' | 'other';
  method: string;
  path: string;
  query: string;
  /** Status sent to the client; 0 when the connection was reset or the upstream failed. */
  status: number;
  /** Request body bytes received from the client. */
  requestBodyBytes: number;
  /** Whether the request carried an `Authorization` header (its value is never kept). */
  hadAuthorization: boolean;
  /** The `Host` header the client sent. */
  host?: string;
  contentLength?: number;
  contentRange?: string;
  /** Type of the fault action applied, if any. */
  fault?: FaultAction['type'];
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Hook asked before the rules for every request; return an action, or undefined to go on to the rules. */
  onRequest?: (req: FaultRequestInfo) => FaultAction | undefined;
  /** How absolute `Location` answers are rewritten; see {@link FaultProxy.locationMode}. Default `proxy`. */
  locationMode?: LocationMode;
  /** PEM file of a CA to trust when the target is https. */
  upstreamCaFile?: string;
  /** Start the second listener on 127.0.0.2. Default true. */
  otherListener?: boolean;
}

/**
 * `proxy`: target origin → the origin of the listener that answered;
 * `relative`: absolute Locations become path+query;
 * `other`: Locations point at the second listener (`127.0.0.2`).
 */
export type LocationMode = 'proxy' | 'relative' | 'other';

/** A running fault-injecting reverse proxy made by {@link startFaultProxy}. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.2:PORT` (second listener), when started. */
  otherUrl?: string;
  /** `127.0.0.2:PORT`, when started. */
  otherHost?: string;
  /** Requests to the main listener, in arrival order. */
  log: FaultLogEntry[];
  /** TCP connections the main listener accepted (reset by clearLog). */
  connections: number;
  /** Requests to the second listener, in arrival order. */
  otherLog: FaultLogEntry[];
  /** Current Location rewriting; may be changed at any time. */
  locationMode: LocationMode;
  /** Current hook; may be changed at any time. */
  onRequest?: (req: FaultRequestInfo) => FaultAction | undefined;
  /**
   * Adds rules. Every rule counts every request it matches; the first rule
   * (in insertion order) that has skipped enough matches and still has
   * `times` left fires.
   */
  addRule(...rules: FaultRule[]): void;
  /** Removes every rule. */
  clearRules(): void;
  /** Empties both logs. */
  clearLog(): void;
  /** How many times each rule fired, in insertion order. */
  fired(): number[];
  /** Closes both listeners and every connection. */
  stop(): Promise<void>;
}

const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const MiB = 1024 * 1024;
const UPLOAD = /\/blobs\/uploads\//;

/** GHCR: PATCH bodies whose Content-Length exceeds `maxBytes` (default 4 MiB) get 416. */
export function ghcrRules(maxBytes = 4 * MiB): FaultRule[] {
  return [
    {
      method: 'PATCH',
      path: UPLOAD,
      times: Infinity,
      when: (r) => r.contentLength !== undefined && r.contentLength > maxBytes,
      action: {
        type: 'respond',
        status: 416,
        body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'exceeds the maximum permissible limit of 4.00MiB' }] },
      },
    },
  ];
}

/**
 * ECR: PATCH bodies under `minBytes` (default 5 MiB) get 400
 * LayerPartTooSmallException (the proxy cannot tell the last chunk, so every
 * small one is refused); successful PATCH answers become 201, without
 * `Range` when `dropRange`.
 */
export function ecrRules(opts: { minBytes?: number; dropRange?: boolean } = {}): FaultRule[] {
  const min = opts.minBytes ?? 5 * MiB;
  return [
    {
      method: 'PATCH',
      path: UPLOAD,
      times: Infinity,
      when: (r) => r.contentLength !== undefined && r.contentLength < min,
      action: {
        type: 'respond',
        status: 400,
        body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'LayerPartTooSmallException: Layer part size must be at least 5 MiB' }] },
      },
    },
    {
      method: 'PATCH',
      path: UPLOAD,
      times: Infinity,
      action: { type: 'rewrite', ifStatus: 202, status: 201, removeHeaders: opts.dropRange ? ['range'] : [] },
    },
  ];
}

/** Google Artifact Registry: every PATCH refused with `status` (default 405). */
export function garRules(status = 405): FaultRule[] {
  return [
    {
      method: 'PATCH',
      path: UPLOAD,
      times: Infinity,
      action: { type: 'respond', status, body: { errors: [{ code: 'UNSUPPORTED', message: 'chunked upload is not supported' }] } },
    },
  ];
}

/**
 * Makes the listener(s) demand credentials in front of an open registry:
 * requests without `Authorization` get 401 `Basic realm="fault-proxy"`. With
 * `listener: 'main'` and `locationMode: 'other'`, a client that keeps its
 * credentials to the host that asked for them still works, and the second
 * listener's log shows whether it leaked them.
 */
export function basicChallengeRules(listener: 'main' | 'other' | 'any' = 'main'): FaultRule[] {
  return [
    {
      listener,
      times: Infinity,
      when: (r) => r.headers.authorization === undefined,
      action: {
        type: 'respond',
        status: 401,
        headers: { 'www-authenticate': 'Basic realm="fault-proxy"' },
        body: { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
      },
    },
  ];
}

/**
 * Starts a reverse proxy on 127.0.0.1 (and a second listener on 127.0.0.2)
 * in front of `targetUrl`, streaming bodies both ways, rewriting absolute
 * `Location` answers, logging requests and injecting faults by rule.
 */
export async function startFaultProxy(targetUrl: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const https = target.protocol === 'https:';
  const agent = https
    ? new HttpsAgent({ keepAlive: true, ca: opts.upstreamCaFile ? readFileSync(opts.upstreamCaFile) : undefined })
    : new HttpAgent({ keepAlive: true });
  const rules: Array<{ rule: FaultRule; seen: number; fired: number }> = [];
  let challenge: Promise<string | undefined> | undefined;
  const servers: Server[] = [];

  const upstreamChallenge = (): Promise<string | undefined> => {
    challenge ??= new Promise((resolve) => {
      const req = (https ? httpsRequest : httpRequest)(new URL('/v2/', target), { agent }, (res) => {
        res.resume();
        const h = res.headers['www-authenticate'];
        resolve(Array.isArray(h) ? h[0] : h);
      });
      req.on('error', () => resolve(undefined));
      req.end();
    });
    return challenge;
  };

  const pick = (info: FaultRequestInfo): FaultAction | undefined => {
    const hooked = proxy.onRequest?.(info);
    if (hooked) return hooked;
    let chosen: FaultAction | undefined;
    for (const r of rules) {
      const { rule } = r;
      if (rule.method && rule.method.toUpperCase() !== info.method) continue;
      if (rule.path && !rule.path.test(info.path)) continue;
      if (rule.listener && rule.listener !== 'any' && rule.listener !== info.listener) continue;
      if (rule.when && !rule.when(info)) continue;
      r.seen++;
      const skip = rule.skip ?? (rule.nth !== undefined ? rule.nth - 1 : 0);
      if (!chosen && r.seen > skip && r.fired < (rule.times ?? 1)) {
        r.fired++;
        chosen = rule.action;
      }
    }
    return chosen;
  };

  const rewriteLocation = (loc: string, self: string): string => {
    let u: URL;
    try {
      u = new URL(loc);
    } catch {
      return loc; // relative already
    }
    if (u.origin !== target.origin) return loc;
    const rest = `${u.pathname}${u.search}${u.hash}`;
    if (proxy.locationMode === 'relative') return rest;
    if (proxy.locationMode === 'other' && proxy.otherUrl) return `${proxy.otherUrl}${rest}`;
    return `${self}${rest}`;
  };

  const handle =
    (listener: 'main' | 'other', self: string) =>
    async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const cl = req.headers['content-length'];
      const info: FaultRequestInfo = {
        listener,
        method: req.method ?? 'GET',
        path: q < 0 ? raw : raw.slice(0, q),
        query: q < 0 ? '' : raw.slice(q + 1),
        headers: req.headers,
        contentLength: cl !== undefined ? Number(cl) : undefined,
      };
      const entry: FaultLogEntry = {
        listener,
        method: info.method,
        path: info.path,
        query: info.query,
        status: 0,
        requestBodyBytes: 0,
        hadAuthorization: req.headers.authorization !== undefined,
        host: req.headers.host,
        contentLength: info.contentLength,
        contentRange: req.headers['content-range'],
      };
      (listener === 'main' ? proxy.log : proxy.otherLog).push(entry);
      const action = pick(info);
      if (action && action.type !== 'pass') entry.fault = action.type;
      const socket = req.socket;
      const kill = (): void => {
        const s = socket as Socket & { resetAndDestroy?: () => void };
        if (s.resetAndDestroy) s.resetAndDestroy();
        else s.destroy();
      };

      if (action?.type === 'respond' || action?.type === 'unauthorized') {
        let status: number;
        let headers: Record<string, string>;
        let body: string | Buffer;
        if (action.type === 'respond') {
          status = action.status;
          const b = action.body ?? '';
          const json = typeof b === 'object' && !Buffer.isBuffer(b);
          body = json ? JSON.stringify(b) : b;
          headers = { ...(json ? { 'content-type': 'application/json' } : {}), ...action.headers };
        } else {
          status = 401;
          let ch = (await upstreamChallenge()) ?? 'Basic realm="registry"';
          const m = /^\/v2\/(.+)\/(blobs|manifests|tags)\//.exec(info.path);
          if (/^Bearer /i.test(ch) && action.withScope !== false && m && !/scope=/.test(ch)) {
            const write = !['GET', 'HEAD'].includes(info.method);
            ch += `,scope="repository:${m[1]}:${write ? 'pull,push' : 'pull'}"`;
          }
          headers = { 'content-type': 'application/json', 'www-authenticate': ch };
          body = JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
        }
        const answer = (): void => {
          entry.status = status;
          res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
          res.end(info.method === 'HEAD' ? undefined : body);
        };
        req.on('data', (c: Buffer) => {
          entry.requestBodyBytes += c.length;
        });
        if (action.type === 'respond' && action.early) answer();
        else req.once('end', answer);
        req.resume();
        return;
      }
      if (action?.type === 'delay') await new Promise((r) => setTimeout(r, action.ms));

      const headers: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && v !== undefined) headers[k] = v;
      headers.host = target.host;
      const up = (https ? httpsRequest : httpRequest)(new URL(raw, target), { method: info.method, headers, agent });
      let resetting = false;
      up.on('error', () => {
        if (resetting) return;
        if (!res.headersSent) {
          entry.status = 502;
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end('fault proxy: upstream failed');
        } else res.destroy();
      });
      req.on('close', () => {
        if (!req.complete) up.destroy();
      });
      res.on('close', () => {
        if (!res.writableFinished) up.destroy();
      });

      up.on('response', (ures) => {
        if (resetting) {
          ures.destroy();
          return;
        }
        const out: OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(ures.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
        if (typeof out.location === 'string') out.location = rewriteLocation(out.location, self);
        let status = ures.statusCode ?? 502;
        if (action?.type === 'rewrite' && (action.ifStatus === undefined || action.ifStatus === status)) {
          status = action.status ?? status;
          for (const h of action.removeHeaders ?? []) delete out[h.toLowerCase()];
          for (const [k, v] of Object.entries(action.setHeaders ?? {})) out[k.toLowerCase()] = v;
        }
        entry.status = status;
        res.writeHead(status, out);
        if (action?.type === 'resetResponse') {
          let sent = 0;
          const limit = action.afterBytes ?? 0;
          res.flushHeaders();
          ures.on('data', (c: Buffer) => {
            if (sent + c.length >= limit) {
              const part = c.subarray(0, limit - sent);
              sent = limit;
              ures.destroy();
              entry.status = 0;
              if (part.length > 0) res.write(part, () => kill());
              else setImmediate(kill);
              return;
            }
            sent += c.length;
            if (!res.write(c)) {
              ures.pause();
              res.once('drain', () => ures.resume());
            }
          });
          ures.on('end', () => res.end());
          return;
        }
        if (action?.type === 'stallResponse') {
          let sent = 0;
          const limit = action.afterBytes ?? 0;
          res.flushHeaders();
          ures.on('data', (c: Buffer) => {
            if (sent >= limit) return;
            const part = c.subarray(0, limit - sent);
            sent += part.length;
            if (sent >= limit) ures.pause(); // the rest is held back until the client or the proxy ends it
            res.write(part);
          });
          return;
        }
        ures.pipe(res);
      });

      const limit = action?.type === 'reset' ? (action.afterBytes ?? 0) : Infinity;
      const doReset = (): void => {
        resetting = true;
        req.pause();
        entry.status = 0;
        // Let the bytes written so far reach the upstream, then cut both sides.
        setTimeout(() => {
          up.destroy();
          kill();
        }, 20);
      };
      if (limit === 0) {
        doReset();
        return;
      }
      req.on('data', (c: Buffer) => {
        if (resetting) return;
        if (entry.requestBodyBytes + c.length >= limit) {
          const part = c.subarray(0, limit - entry.requestBodyBytes);
          entry.requestBodyBytes = limit;
          resetting = true;
          req.pause();
          up.write(part, () => doReset());
          return;
        }
        entry.requestBodyBytes += c.length;
        if (!up.write(c)) {
          req.pause();
          up.once('drain', () => {
            if (!resetting) req.resume();
          });
        }
      });
      req.on('end', () => {
        if (resetting) return;
        if (limit !== Infinity)
          doReset(); // body shorter than afterBytes: cut at its end
        else up.end();
      });
    };

  const listen = async (listener: 'main' | 'other', address: string): Promise<string> => {
    let selfUrl = '';
    const server = createServer((req, res) => {
      handle(listener, selfUrl)(req, res).catch(() => res.destroy());
    });
    servers.push(server);
    if (listener === 'main')
      server.on('connection', () => {
        proxy.connections++;
      });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve());
    });
    selfUrl = `http://${address}:${(server.address() as AddressInfo).port}`;
    return selfUrl;
  };

  const proxy: FaultProxy = {
    url: '',
    host: '',
    log: [],
    otherLog: [],
    connections: 0,
    locationMode: opts.locationMode ?? 'proxy',
    onRequest: opts.onRequest,
    addRule: (...rs) => {
      for (const rule of rs) rules.push({ rule, seen: 0, fired: 0 });
    },
    clearRules: () => {
      rules.length = 0;
    },
    clearLog: () => {
      proxy.log.length = 0;
      proxy.otherLog.length = 0;
      proxy.connections = 0;
    },
    fired: () => rules.map((r) => r.fired),
    async stop() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.closeAllConnections();
              s.close(() => r());
            }),
        ),
      );
      servers.length = 0;
      agent.destroy();
    },
  };
  proxy.url = await listen('main', '127.0.0.1');
  proxy.host = proxy.url.slice('http://'.length);
  if (opts.otherListener !== false) {
    proxy.otherUrl = await listen('other', '127.0.0.2');
    proxy.otherHost = proxy.otherUrl.slice('http://'.length);
  }
  return proxy;
}
