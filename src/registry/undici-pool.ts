/**
 * undici's `Pool`, loaded without the rest of undici. The package's entry
 * point loads fetch, WebSocket, cookies, caches and every dispatcher (about
 * 110 files, some 40 ms of every command's start on a small machine) where
 * the transport needs one class and the request API that the entry point
 * installs on it. undici publishes no `exports` map, so its files can be
 * loaded directly; should a release move them, the full entry point is
 * loaded instead.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

const require = createRequire(import.meta.url);

function loadPool(): typeof UndiciPool {
  try {
    const Pool = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
    const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: Record<string, unknown> };
    if (typeof Dispatcher.prototype.request !== 'function') Object.assign(Dispatcher.prototype, require('undici/lib/api/index.js'));
    if (typeof Pool === 'function' && typeof (Pool.prototype as unknown as Record<string, unknown>).request === 'function') return Pool;
  } catch {
    // Fall through to the entry point.
  }
  return (require('undici') as typeof import('undici')).Pool;
}

export const Pool = loadPool();
export type Pool = UndiciPool;
