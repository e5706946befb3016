/** Flags shared by every command that talks to a registry, and the client they configure. */
import { Flags } from '@oclif/core';
import { OciError } from '../src/errors.js';
import { isLocalLocation } from '../src/ocilayout/location.js';
import { parseReference, RegistryClient, type RegistryClientOptions } from '../src/registry/index.js';
import { readCaFile } from '../src/registry/transport.js';
import { parseSize } from '../src/util/size.js';
import type { FlagValues } from './base.js';
import { readStdinSecret } from './prompt.js';
import { prose } from './prose.js';

export const registryFlags = {
  username: Flags.string({
    char: 'u',
    description: prose`Registry user name (with --password-stdin). Default: $OCI_OS_USERNAME, then the Docker/podman
      auth file. These credentials, like $OCI_OS_USERNAME/$OCI_OS_PASSWORD, go only to the registry the command writes
      to (else the one it reads from); any other registry gets what the auth file holds for it.`,
    helpGroup: 'REGISTRY',
  }),
  'password-stdin': Flags.boolean({
    description: 'Read the password or token from standard input (sent only to the registry --username is for).',
    helpGroup: 'REGISTRY',
  }),
  'ca-file': Flags.string({ description: 'PEM file of CA certificates to trust in addition to the system ones.', helpValue: 'FILE', helpGroup: 'REGISTRY' }),
  insecure: Flags.boolean({ description: 'Skip TLS certificate verification.', helpGroup: 'REGISTRY' }),
  'plain-http': Flags.boolean({
    allowNo: true,
    description: prose`Speak plain HTTP (default only for localhost, 127.0.0.0/8 and [::1]; --no-plain-http to use
      HTTPS there).`,
    helpGroup: 'REGISTRY',
  }),
  retries: Flags.integer({
    min: 0,
    max: 100,
    default: 5,
    description: 'Retries per request after connection errors, 408, 429 and 5xx (with backoff and Retry-After).',
    helpGroup: 'REGISTRY',
  }),
  timeout: Flags.integer({
    min: 1,
    max: 86_400,
    default: 300,
    description: prose`Seconds a registry may send nothing before a request fails (and is retried, see --retries):
      while it is yet to answer, or between two parts of its answer. Connecting gives up after 30 s, or this when
      shorter. The request that completes a blob upload waits for its answer at least 300 s, however short this
      is: a registry may check and move the whole blob first.`,
    helpValue: 'SECONDS',
    helpGroup: 'REGISTRY',
  }),
};

/** Flags of commands that upload (push, copy, attach, image build/index --push), beside {@link registryFlags}. */
export const uploadFlags = {
  'chunk-size': Flags.string({
    description: prose`Upload chunk size; adapted to what the registry accepts [default: 8MiB; 4MiB for ghcr.io; blobs
      read from a file or layout, and blobs compressed while they are pushed, go in one request (up to 1GiB)].`,
    helpValue: 'SIZE',
    helpGroup: 'REGISTRY',
  }),
};

/** The values of {@link registryFlags}, and of {@link uploadFlags} for the commands that have them. */
export type RegistryFlagValues = FlagValues<typeof registryFlags> & Partial<FlagValues<typeof uploadFlags>>;

/** The transport's timeouts for --timeout SECONDS (see its description). */
export function timeoutOptions(seconds: number): Pick<RegistryClientOptions, 'headersTimeoutMs' | 'bodyTimeoutMs' | 'connectTimeoutMs'> {
  const ms = seconds * 1000;
  return { headersTimeoutMs: ms, bodyTimeoutMs: ms, connectTimeoutMs: Math.min(30_000, ms) };
}

/** Prints a warning a registry sent (a Warning header), naming the registry. */
export function printRegistryWarning(message: string, registry: string): void {
  process.stderr.write(`oci-os: warning: ${registry}: ${message}\n`);
}

/** Smallest --chunk-size accepted. */
export const MIN_CHUNK_SIZE = 1024;

/**
 * Parses --chunk-size. Below 1 KiB is refused here: 0 would be rounded up to
 * one byte, and a registry that refuses chunks that small fails the upload
 * only after it started, with a message about the registry, not the flag.
 */
export function parseChunkSize(text: string): number {
  const n = parseSize(text, 'chunk size');
  if (n < MIN_CHUNK_SIZE) {
    throw new OciError('USAGE', `invalid --chunk-size "${text}": use at least 1KiB (the default is 8MiB)`);
  }
  return n;
}

/** The locations a command writes to and reads from, which decide where explicit credentials go. */
export interface CredentialsTarget {
  /** What the command writes to (a registry reference, or oci:/oci-archive:), if anything. */
  writes?: string;
  /** What it reads from (undefined entries are skipped). */
  reads?: ReadonlyArray<string | undefined>;
}

/** The registry a location names; null for a local one; false when it does not parse (the command reports that). */
function locationRegistry(location: string): string | null | false {
  if (isLocalLocation(location)) return null;
  try {
    return parseReference(location).registry;
  } catch {
    return false;
  }
}

/**
 * The one registry that explicit credentials (--username, OCI_OS_USERNAME and
 * OCI_OS_PASSWORD) are for: the registry the command writes to, else the
 * registry it reads from. `false` (none) when nothing names a registry, when
 * the destination does not parse (nothing may go to a source meanwhile), or
 * when the sources name several registries and the destination none; the
 * latter is a usage error when credentials were given on the command line.
 */
export function credentialsRegistry(target: CredentialsTarget, explicit = false): string | false {
  if (target.writes !== undefined) {
    const w = locationRegistry(target.writes);
    if (w !== null) return w;
  }
  const reads = [...new Set((target.reads ?? []).map((r) => (r === undefined ? null : locationRegistry(r))).filter((r): r is string => typeof r === 'string'))];
  if (reads.length > 1 && explicit) {
    throw new OciError('USAGE', `--username is for one registry, but the command reads from ${reads.join(', ')}`, {
      hint: 'log in to each with `oci-os login` instead',
    });
  }
  return reads.length === 1 ? reads[0]! : false;
}

/**
 * Builds the registry client the flags describe. Credentials are never
 * printed, and go only to the registry {@link credentialsRegistry} picks
 * from `target`.
 */
export async function registryClientFromFlags(
  flags: RegistryFlagValues,
  target: CredentialsTarget,
  extra: RegistryClientOptions = {},
): Promise<RegistryClient> {
  const options: RegistryClientOptions = { ...extra };
  // First, so a usage error comes before standard input is read for a password.
  if (flags['chunk-size']) options.chunkSize = parseChunkSize(flags['chunk-size']);
  options.credentialsHost = credentialsRegistry(target, flags['password-stdin'] || flags.username !== undefined);
  if (flags['password-stdin']) {
    const password = await readStdinSecret();
    if (!password) throw new OciError('USAGE', '--password-stdin given but standard input was empty');
    const username = flags.username ?? process.env.OCI_OS_USERNAME;
    if (!username) throw new OciError('USAGE', '--password-stdin needs --username (or OCI_OS_USERNAME)');
    options.credentials = { username, password };
  } else if (flags.username !== undefined) {
    const password = process.env.OCI_OS_PASSWORD;
    if (!password) throw new OciError('USAGE', '--username needs a password: pipe it to --password-stdin or set OCI_OS_PASSWORD');
    options.credentials = { username: flags.username, password };
  } else if (process.env.OCI_OS_USERNAME && !process.env.OCI_OS_PASSWORD) {
    // Not an error: a CI secret that is not available (a pull request from a fork) still allows
    // anonymous reads. But a later "requires a username and password" needs this explanation.
    process.stderr.write('oci-os: warning: OCI_OS_USERNAME is set but OCI_OS_PASSWORD is empty: no credentials from them are sent\n');
  }
  // Checked now: a file that is not a CA would only show at the first TLS connection.
  if (flags['ca-file']) {
    readCaFile(flags['ca-file']);
    options.caFile = flags['ca-file'];
  }
  if (flags.insecure) options.insecure = true;
  if (flags['plain-http'] !== undefined) options.plainHttp = flags['plain-http'];
  if (flags.timeout !== undefined) Object.assign(options, timeoutOptions(flags.timeout));
  if (flags.retries !== undefined) {
    const given = extra.retry && !('wait' in extra.retry) ? extra.retry : {};
    options.retry = { ...given, retries: flags.retries };
  }
  return new RegistryClient(options);
}
