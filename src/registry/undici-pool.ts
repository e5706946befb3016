/**
 * undici's `Pool`, loaded on first use. undici's entry point loads fetch,
 * WebSocket, cookies, caches and every dispatcher (about 110 files, some
 * 40 ms on a small machine); commands that never talk to a registry
 * (`--version`, `inspect oci:DIR`, `build`) must not pay for it, so the
 * transport asks for the class when it opens its first connection.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool } from 'undici';

const require = createRequire(import.meta.url);
let pool: typeof UndiciPool | undefined;

/** The `Pool` class of undici's public API, loaded the first time it is asked for. */
export function undiciPool(): typeof UndiciPool {
  return (pool ??= (require('undici') as typeof import('undici')).Pool);
}
