/** Ctrl-C and SIGTERM for every command: cancel the work, let it clean up, and say what was left. */

import { openLocationForReading, type ReadableLocation } from '../src/copy/locations.js';
import { InterruptedError } from '../src/errors.js';
import type { RegistryClient } from '../src/registry/index.js';

/**
 * An AbortSignal that fires on the first SIGINT/SIGTERM while `fn` runs;
 * `fn` does its own cleanup (aborts a destination, removes temporary files)
 * before it settles. The second signal is caught too and only says that
 * cleanup is under way: a second Ctrl-C, typed because the first seemed
 * slow, would otherwise kill the process halfway through and leave partial
 * blobs and temporary directories behind. A third one exits at once (exit
 * code 130), for a cleanup that cannot finish. Once interrupted, the handlers stay until
 * the process exits, and it exits as soon as 'exit' was emitted: Node
 * removes signal handlers while it tears the process down, so a late signal
 * could otherwise still turn exit code 1 into death by signal. An error `fn`
 * rejects with after the signal (a stream cut short) is reported as the
 * interruption.
 */
export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>, outcome = 'interrupted'): Promise<T> {
  const abort = new AbortController();
  let signals = 0;
  const stop = () => {
    signals++;
    if (signals === 1) abort.abort();
    else if (signals === 2) process.stderr.write('oci-os: interrupted; removing partial files before exiting (once more to quit at once)\n');
    // A clean-up that hangs (a registry that no longer answers) must not hold the terminal.
    else process.exit(130);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    return await fn(abort.signal);
  } catch (err) {
    // What the work said of its own interruption is kept ("copy interrupted; no tag was set"); anything
    // else (a request that was cancelled, a stream cut short) is reported as the command's `outcome`.
    if (abort.signal.aborted && !(err instanceof InterruptedError)) throw new InterruptedError(outcome, { cause: err });
    throw err;
  } finally {
    if (!abort.signal.aborted) {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
    } else {
      // Inside an 'exit' listener process.exit() ends the process at once, handlers still installed.
      process.once('exit', () => process.exit());
    }
  }
}

/**
 * Opens `source` for reading and runs `fn` on it with Ctrl-C handled (see
 * {@link withInterrupt}); the location is closed whatever happens. Opening
 * is inside: an oci-archive is unpacked to a temporary directory, which an
 * interrupt must not leave behind.
 */
export function withReadableLocation<T>(source: string, client: RegistryClient, fn: (loc: ReadableLocation, signal: AbortSignal) => Promise<T>): Promise<T> {
  return withInterrupt(async (signal) => {
    const loc = await openLocationForReading(source, { client, signal });
    try {
      return await fn(loc, signal);
    } finally {
      await loc.close();
    }
  });
}
