/** Rule sets that make the fault-injecting proxy behave like registries with known quirks. */
import type { FaultRule } from './fault-types.js';

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
