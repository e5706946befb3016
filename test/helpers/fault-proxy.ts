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

import type { FaultAction, FaultLogEntry, FaultProxy, FaultProxyOptions, FaultRequestInfo, FaultRule } from './fault-types.js';

export * from './fault-rules.js';
export * from './fault-types.js';

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
