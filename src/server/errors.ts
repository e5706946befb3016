/**
 * Error responses of the embedded registry: the `{"errors":[{code,message,detail}]}`
 * body and the status codes of the OCI distribution-spec v1.1 ("Error Codes").
 */
import type { ServerResponse } from 'node:http';

/**
 * Error codes from the distribution-spec error code table, plus UNKNOWN for
 * failures of the registry itself (5xx), as CNCF distribution answers them.
 */
export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNKNOWN';

const defaultMessages: Record<RegistryErrorCode, string> = {
  BLOB_UNKNOWN: 'blob unknown to registry',
  BLOB_UPLOAD_INVALID: 'blob upload invalid',
  BLOB_UPLOAD_UNKNOWN: 'blob upload unknown to registry',
  DIGEST_INVALID: 'provided digest did not match uploaded content',
  MANIFEST_BLOB_UNKNOWN: 'manifest references a manifest or blob unknown to registry',
  MANIFEST_INVALID: 'manifest invalid',
  MANIFEST_UNKNOWN: 'manifest unknown to registry',
  NAME_INVALID: 'invalid repository name',
  NAME_UNKNOWN: 'repository name not known to registry',
  SIZE_INVALID: 'provided length did not match content length',
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  UNSUPPORTED: 'the operation is unsupported',
  TOOMANYREQUESTS: 'too many requests',
  UNKNOWN: 'unknown error',
};

/**
 * A failure the registry answers with a status, one spec error in the body
 * and optional extra headers (`Range` on a 416, `WWW-Authenticate` on a 401).
 */
export class RegistryHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: RegistryErrorCode,
    message?: string,
    readonly detail?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message ?? defaultMessages[code]);
    this.name = 'RegistryHttpError';
  }
}

/** Shorthand constructor: `httpError(404, 'BLOB_UNKNOWN', undefined, { digest })`. */
export function httpError(status: number, code: RegistryErrorCode, message?: string, detail?: unknown, headers?: Record<string, string>): RegistryHttpError {
  return new RegistryHttpError(status, code, message, detail, headers);
}

/** Whether a file-system error means the storage is full (no space, or a quota reached). */
export function isStorageFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * The answer to an error that is no RegistryHttpError: 507 when the storage
 * is full (the client may retry once space is freed), 500 otherwise. The
 * error's own message stays in the server: it may name paths.
 */
export function internalError(err: unknown, headers?: Record<string, string>): RegistryHttpError {
  if (isStorageFull(err)) {
    return httpError(507, 'UNKNOWN', 'insufficient storage: the registry has no space left', { reason: 'ENOSPC' }, headers);
  }
  return httpError(500, 'UNKNOWN', 'internal error');
}

/** Writes an error response unless headers were already sent (then the socket is closed). */
export function sendError(res: ServerResponse, err: RegistryHttpError, withBody = true): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify({ errors: [{ code: err.code, message: err.message, detail: err.detail ?? {} }] }));
  res.statusCode = err.status;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', body.length);
  res.end(withBody ? body : undefined);
}
