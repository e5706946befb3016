/**
 * The request handler of the embedded registry: optional fault-injection
 * hook, optional Basic auth, routing to the endpoint handlers, spec error
 * bodies and optional request logging (method, path, status; never headers).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BasicAuthenticator } from './auth.js';
import { cancelUpload, deleteBlob, getBlob, patchUpload, putUpload, startUpload, uploadStatus } from './blobs.js';
import { type Exchange, type RegistryContext, reply } from './context.js';
import { httpError, internalError, RegistryHttpError, sendError } from './errors.js';
import { deleteManifest, getManifest, listReferrers, listTags, putManifest } from './manifests.js';
import { parseRoute, type Route } from './routes.js';
import { RegistryStorage } from './storage.js';
import { UploadSessions } from './uploads.js';

/** Test hooks. */
export interface RegistryHooks {
  /**
   * Called first for every request, before authentication. Return true when
   * the hook answered the request itself (e.g. a 503, or
   * `req.socket.destroy()` to simulate a reset); false lets the registry
   * handle it.
   */
  onRequest?(req: IncomingMessage, res: ServerResponse): boolean | Promise<boolean>;
}

/** One line of the optional request log. */
export interface RequestLogEntry {
  method: string;
  /** URL path without the query string. */
  path: string;
  /** Status sent; 0 when the connection closed before a response. */
  status: number;
  durationMs: number;
}

/** Options of the registry handler. Zero or undefined means "default". */
export interface RegistryHandlerOptions {
  /** Directory holding blobs, repositories and upload sessions; created when missing. */
  root: string;
  /** htpasswd file with bcrypt hashes; when set, every request needs Basic credentials. */
  htpasswdFile?: string;
  /** Told what in the configuration cannot take effect (htpasswd lines that are not bcrypt). */
  onWarning?: (message: string) => void;
  /** Fault-injection hooks for tests. */
  hooks?: RegistryHooks;
  /** Request log callback; logging is off without it. */
  log?: (entry: RequestLogEntry) => void;
  /** Advertised as `OCI-Chunk-Min-Length`; a PATCH following a shorter chunk is refused. */
  chunkMinLength?: number;
  /** PATCH bodies larger than this are refused with 413 (simulates registries with a chunk cap). */
  chunkMaxLength?: number;
  /** Largest manifest accepted; default 4 MiB. */
  maxManifestBytes?: number;
  /** Upload sessions without any request for this long are removed; default 1 hour. */
  uploadIdleMs?: number;
  /** Most upload sessions open at once; further POSTs answer 429 TOOMANYREQUESTS. Default 1000. */
  maxUploadSessions?: number;
}

/** A node:http request listener; `close` stops what the handler runs besides requests (the bcrypt threads). */
export type RegistryRequestHandler = ((req: IncomingMessage, res: ServerResponse) => void) & { close?(): Promise<void> };

/** Default largest manifest: 4 MiB, the size the distribution-spec says registries should accept. */
export const defaultMaxManifestBytes = 4 * 1024 * 1024;

/**
 * Prepares the storage under `root`, loads the htpasswd file when given and
 * returns a request listener for `http.createServer`.
 */
export async function createRegistryHandler(options: RegistryHandlerOptions): Promise<RegistryRequestHandler> {
  const storage = new RegistryStorage(options.root);
  await storage.init();
  const auth = options.htpasswdFile ? await BasicAuthenticator.fromFile(options.htpasswdFile, options.onWarning) : undefined;
  const ctx: RegistryContext = {
    storage,
    uploads: new UploadSessions(storage, { idleMs: options.uploadIdleMs, maxSessions: options.maxUploadSessions }),
    limits: { chunkMinLength: options.chunkMinLength, chunkMaxLength: options.chunkMaxLength },
    maxManifestBytes: options.maxManifestBytes || defaultMaxManifestBytes,
  };
  const listener: RegistryRequestHandler = (req, res) => {
    const started = Date.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://registry.invalid');
    } catch {
      url = new URL('http://registry.invalid/invalid-url');
    }
    if (options.log) {
      const log = options.log;
      res.on('close', () => {
        try {
          log({
            method: req.method ?? '',
            path: url.pathname,
            status: res.headersSent ? res.statusCode : 0,
            durationMs: Date.now() - started,
          });
        } catch {
          // A failing logger must not take the registry down.
        }
      });
    }
    void handle(ctx, auth, options.hooks, { req, res, url });
  };
  listener.close = async () => {
    await auth?.close();
  };
  return listener;
}

async function handle(ctx: RegistryContext, auth: BasicAuthenticator | undefined, hooks: RegistryHooks | undefined, ex: Exchange): Promise<void> {
  const { req, res } = ex;
  try {
    if (hooks?.onRequest && (await hooks.onRequest(req, res))) return;
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    if (auth) await auth.check(req.headers.authorization, req.socket.remoteAddress);
    const route = parseRoute(ex.url.pathname);
    if (!route) throw httpError(404, 'UNSUPPORTED', `no such endpoint ${ex.url.pathname}`);
    await dispatch(ctx, ex, route, req.method ?? 'GET');
  } catch (err) {
    try {
      // A request whose body was read to the end counts as destroyed too, so
      // only the connection tells whether an answer can still be delivered.
      if (res.destroyed || req.socket.destroyed) res.destroy();
      else sendError(res, err instanceof RegistryHttpError ? err : internalError(err), req.method !== 'HEAD');
    } catch {
      res.destroy();
    }
  }
}

function notAllowed(method: string, allow: string): RegistryHttpError {
  return httpError(405, 'UNSUPPORTED', `method ${method} is not allowed here`, undefined, { Allow: allow });
}

async function dispatch(ctx: RegistryContext, ex: Exchange, route: Route, method: string): Promise<void> {
  switch (route.kind) {
    case 'base':
      if (method !== 'GET' && method !== 'HEAD') throw notAllowed(method, 'GET, HEAD');
      return reply(ex.res, 200, { 'Content-Type': 'application/json' }, method === 'HEAD' ? undefined : '{}');
    case 'blob':
      if (method === 'GET' || method === 'HEAD') return getBlob(ctx, ex, route.name, route.digest);
      if (method === 'DELETE') return deleteBlob(ctx, ex, route.name, route.digest);
      throw notAllowed(method, 'GET, HEAD, DELETE');
    case 'uploadStart':
      if (method === 'POST') return startUpload(ctx, ex, route.name);
      throw notAllowed(method, 'POST');
    case 'upload':
      if (method === 'PATCH') return patchUpload(ctx, ex, route.name, route.id);
      if (method === 'PUT') return putUpload(ctx, ex, route.name, route.id);
      if (method === 'GET') return uploadStatus(ctx, ex, route.name, route.id);
      if (method === 'DELETE') return cancelUpload(ctx, ex, route.name, route.id);
      throw notAllowed(method, 'GET, PATCH, PUT, DELETE');
    case 'manifest':
      if (method === 'GET' || method === 'HEAD') return getManifest(ctx, ex, route.name, route.reference);
      if (method === 'PUT') return putManifest(ctx, ex, route.name, route.reference);
      if (method === 'DELETE') return deleteManifest(ctx, ex, route.name, route.reference);
      throw notAllowed(method, 'GET, HEAD, PUT, DELETE');
    case 'tags':
      if (method === 'GET') return listTags(ctx, ex, route.name);
      throw notAllowed(method, 'GET');
    case 'referrers':
      if (method === 'GET') return listReferrers(ctx, ex, route.name, route.digest);
      throw notAllowed(method, 'GET');
  }
}
