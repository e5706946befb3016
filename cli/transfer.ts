/** Flags and rendering shared by the commands that copy content (`copy`, `pull`). */
import { Flags } from '@oclif/core';
import type { Command } from '@oclif/core';
import { transfer, type TransferOptions, type TransferResult } from '../src/copy/transfer.js';
import { ProgressRenderer, type progressFlags } from './progress.js';
import { printRegistryWarning, registryClientFromFlags, type RegistryFlagValues } from './registry-flags.js';
import type { FlagValues } from './base.js';
import { formatSize } from '../src/util/size.js';
import { InterruptedError } from '../src/errors.js';
import { openLocationForReading, type ReadableLocation } from '../src/copy/locations.js';
import type { RegistryClient } from '../src/registry/index.js';

/** `-j/--jobs N`: one limit for all of a command's requests; `description` says which. */
const jobs = (description: string) => Flags.integer({ char: 'j', min: 1, max: 64, default: 4, description });

/** For `copy`, `pull` and `image index`: blob transfers and manifest requests share the slots. */
export const jobsFlag = { jobs: jobs('Blob transfers and manifest reads/writes at once.') };

/** For `verify`: blob and manifest checks share the slots. */
export const verifyJobsFlag = { jobs: jobs('Blob and manifest checks at once.') };

/** The JSON form of a transfer. */
export function transferSummary(r: TransferResult) {
  const count = (s: string) => r.contents.filter((c) => c.kind === 'blob' && c.status === s).length;
  return {
    source: r.source,
    destination: r.destination,
    digest: r.root.digest,
    mediaType: r.root.mediaType,
    size: r.root.size,
    tags: r.tags,
    blobs: { uploaded: count('uploaded'), exists: count('exists'), mounted: count('mounted') },
    bytesTransferred: r.bytesTransferred,
    contents: r.contents,
    ...(r.verification
      ? { verifiedPayloads: r.verification.payloads.map((p) => ({ manifest: p.manifest, name: p.name, size: p.size, chunks: p.chunks })) }
      : {}),
  };
}

/** Prints the digest, then one line of counts on stderr (stdout stays machine-readable). */
export function renderTransfer(cmd: Command, r: TransferResult, quiet = false): void {
  const s = transferSummary(r);
  cmd.log(r.root.digest);
  // --quiet and --progress none: the result only.
  if (quiet) return;
  const parts = [`${s.blobs.uploaded} copied (${formatSize(r.bytesTransferred)})`, `${s.blobs.exists} already there`];
  if (s.blobs.mounted) parts.push(`${s.blobs.mounted} mounted`);
  const verified = r.verification?.payloads.length ? `; ${r.verification.payloads.length} payload(s) verified chunk by chunk` : '';
  process.stderr.write(`${r.source} -> ${r.destination}: blobs ${parts.join(', ')}${verified}\n`);
}

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

/**
 * Runs a transfer the way `pull` and `copy` do: progress on stderr, a
 * registry client from the flags (retries reported as progress), Ctrl-C
 * handled, the digest printed, the summary returned for --json.
 */
export async function runTransfer(
  cmd: Command & { jsonEnabled(): boolean },
  flags: RegistryFlagValues & FlagValues<typeof progressFlags & typeof jobsFlag>,
  source: string,
  destination: string,
  options: Pick<TransferOptions, 'sourceKinds' | 'destinationKinds' | 'platform' | 'verifyOsImages'> = {},
): Promise<Record<string, unknown>> {
  const progress = ProgressRenderer.fromFlags({ ...flags, json: cmd.jsonEnabled() });
  const client = await registryClientFromFlags(flags, { writes: destination, reads: [source] }, {
    onWarning: printRegistryWarning,
    retry: { onRetry: (e) => progress.sink({ type: 'retry', ...e }) },
  });
  try {
    const r = await withInterrupt((signal) => transfer(source, destination, { client, jobs: flags.jobs, signal, progress: progress.sink, ...options }));
    progress.close();
    if (!cmd.jsonEnabled()) renderTransfer(cmd, r, progress.mode === 'none');
    return transferSummary(r);
  } finally {
    progress.close();
    await client.close();
  }
}
