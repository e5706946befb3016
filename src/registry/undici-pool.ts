/**
 * undici's `Pool`, loaded on first use, and only what it needs. undici's
 * entry point loads fetch, WebSocket, cookies, caches, mocks and every
 * dispatcher (about 110 files): on a busy 2-core machine 0.4 to 1 s of a
 * pull's start, most of it reading and compiling code a registry client
 * never runs. `Pool` with the request API is 30 of those files; they are
 * loaded as the entry point itself wires them (the API methods assigned to
 * `Dispatcher.prototype`). Should a later undici lay its files out
 * otherwise, the entry point is loaded instead. Commands that never talk to
 * a registry (`--version`, `inspect oci:DIR`, `build`) load none of it.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

const require = createRequire(import.meta.url);
let pool: typeof UndiciPool | undefined;

/** `Pool` and the request API from undici's own files, or undefined when they are not where undici 7 keeps them. */
function poolAlone(): typeof UndiciPool | undefined {
  try {
    const Pool = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
    const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
    const api = require('undici/lib/api/index.js') as Record<string, unknown>;
    if (typeof Pool !== 'function' || !(Pool.prototype instanceof (Dispatcher as unknown as new () => object)) || typeof api.request !== 'function')
      return undefined;
    // What undici's index.js does: every dispatcher gets request(), stream(), pipeline() and the rest.
    Object.assign(Dispatcher.prototype, api);
    return Pool;
  } catch {
    return undefined;
  }
}

/** The `Pool` class of undici's public API, loaded the first time it is asked for. */
export function undiciPool(): typeof UndiciPool {
  return (pool ??= poolAlone() ?? (require('undici') as typeof import('undici')).Pool);
}
