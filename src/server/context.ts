/** State shared by the request handlers of one registry instance. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RegistryStorage } from './storage.js';
import type { UploadLimits, UploadSessions } from './uploads.js';

/** Per-registry state and settings the endpoint handlers use. */
export interface RegistryContext {
  storage: RegistryStorage;
  uploads: UploadSessions;
  limits: UploadLimits;
  /** Largest manifest accepted, in bytes. */
  maxManifestBytes: number;
}

/** One request as the endpoint handlers see it. */
export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
}

/** Sends a response with headers and an optional small body. */
export function reply(res: ServerResponse, status: number, headers: Record<string, string | number | string[]>, body?: string | Buffer): void {
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (body === undefined) {
    if (!res.hasHeader('Content-Length')) res.setHeader('Content-Length', 0);
    res.end();
  } else {
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  }
}

/** Parses the `Content-Length` request header; undefined when absent. */
export function contentLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
