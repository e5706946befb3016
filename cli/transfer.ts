/** Flags, rendering and the runner shared by the commands that copy content (`copy`, `pull`). */

import type { Command } from '@oclif/core';
import { Flags } from '@oclif/core';
import { type TransferOptions, type TransferResult, transfer } from '../src/tasks/transfer.js';
import { formatSize } from '../src/util/size.js';
import type { FlagValues } from './base.js';
import { withInterrupt } from './interrupt.js';
import { ProgressRenderer, type progressFlags } from './progress.js';
import { printRegistryWarning, type RegistryFlagValues, registryClientFromFlags } from './registry-flags.js';

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
  const client = await registryClientFromFlags(
    flags,
    { writes: destination, reads: [source] },
    {
      onWarning: printRegistryWarning,
      retry: { onRetry: (e) => progress.sink({ type: 'retry', ...e }) },
    },
  );
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
