/**
 * undici's `Pool`, loaded on first use. undici's entry point loads fetch,
 * WebSocket, cookies, caches, mocks and every dispatcher (about 110 files);
 * commands that never talk to a registry (`--version`, `inspect oci:DIR`,
 * `build`) must not pay for it, so the transport asks for the class when it
 * opens its first connection.
 *
 * Those that do talk to one load only the modules that make `Pool` and its
 * `request()`: on Node.js 20, 40-50 instead of 110-160 ms of every push and
 * pull. `Pool` comes from the module that defines it, the class the entry
 * exports; `request()` and its kin are the functions of undici's lib/api,
 * which the entry puts on the `Dispatcher` prototype as it loads, and which
 * are put there the same way here. undici has no `exports` map, so the paths
 * resolve as any other. A test holds the class and its methods to the
 * entry's; should a later undici move or change them, the entry is loaded
 * instead.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

const require = createRequire(import.meta.url);
let pool: typeof UndiciPool | undefined;

/** Where undici defines what a `Pool` is made of, as of undici 7. */
export const poolModules = { pool: 'undici/lib/dispatcher/pool', dispatcher: 'undici/lib/dispatcher/dispatcher', api: 'undici/lib/api' } as const;

/** The `Pool` class of undici's public API, loaded the first time it is asked for. */
export function undiciPool(): typeof UndiciPool {
  return (pool ??= poolAlone() ?? (require('undici') as typeof import('undici')).Pool);
}

/** `Pool` from its own modules, or undefined if they are not what they were. */
function poolAlone(): typeof UndiciPool | undefined {
  try {
    const Pool = require(poolModules.pool) as typeof UndiciPool;
    const Dispatcher = require(poolModules.dispatcher) as { prototype: object };
    const api = require(poolModules.api) as Record<string, unknown>;
    if (!(Pool.prototype instanceof (Dispatcher as unknown as typeof UndiciPool)) || typeof api.request !== 'function') return undefined;
    Object.assign(Dispatcher.prototype, api);
    return Pool;
  } catch {
    return undefined;
  }
}
