/**
 * Errors with stable codes. Users (and the CLI) match on `code`, never on
 * message text. Every error that a user can cause carries a one-line message
 * that says what is wrong and, where there is one, what to do (`hint`).
 * Messages and hints never hold credentials: they pass through
 * {@link redactCredentials} when the error is made, whatever made it.
 */
import { redactCredentials } from './secrets/redact.js';

/** Process exit codes used by the CLI; one table for every command. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  auth: 3,
  notFound: 4,
  verification: 5,
  network: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Stable error codes. */
export type ErrorCode =
  | 'USAGE'
  | 'INVALID_ARGUMENT'
  | 'INVALID_REFERENCE'
  | 'INVALID_PAYLOAD_NAME'
  | 'INVALID_PRODUCT_INFO'
  | 'INPUT_UNREADABLE'
  | 'OUTPUT_UNWRITABLE'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'SIZE_EXCEEDS_LIMIT'
  | 'CHUNK_HASH_MISMATCH'
  | 'INVALID_FORMAT'
  | 'UNSUPPORTED'
  | 'AUTH_FAILED'
  | 'NETWORK'
  | 'TLS'
  | 'REGISTRY'
  | 'RETRIES_EXHAUSTED'
  | 'ABORTED'
  | 'INTERNAL';

const exitCodeOf: Record<ErrorCode, ExitCode> = {
  USAGE: ExitCode.usage,
  INVALID_ARGUMENT: ExitCode.usage,
  INVALID_REFERENCE: ExitCode.usage,
  INVALID_PAYLOAD_NAME: ExitCode.usage,
  INVALID_PRODUCT_INFO: ExitCode.usage,
  INPUT_UNREADABLE: ExitCode.failure,
  OUTPUT_UNWRITABLE: ExitCode.failure,
  NOT_FOUND: ExitCode.notFound,
  ALREADY_EXISTS: ExitCode.failure,
  DIGEST_MISMATCH: ExitCode.verification,
  SIZE_MISMATCH: ExitCode.verification,
  SIZE_EXCEEDS_LIMIT: ExitCode.verification,
  CHUNK_HASH_MISMATCH: ExitCode.verification,
  INVALID_FORMAT: ExitCode.verification,
  UNSUPPORTED: ExitCode.failure,
  AUTH_FAILED: ExitCode.auth,
  NETWORK: ExitCode.network,
  TLS: ExitCode.network,
  REGISTRY: ExitCode.failure,
  RETRIES_EXHAUSTED: ExitCode.network,
  ABORTED: ExitCode.failure,
  INTERNAL: ExitCode.failure,
};

export interface OciErrorOptions {
  /** What the user can do about it, shown after the message. */
  hint?: string;
  cause?: unknown;
}

/** The base of every error oci-os throws on purpose. */
export class OciError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, options: OciErrorOptions = {}) {
    super(redactCredentials(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OciError';
    this.code = code;
    this.hint = options.hint === undefined ? undefined : redactCredentials(options.hint);
  }

  /** The process exit code the CLI uses for this error. */
  get exitCode(): ExitCode {
    return exitCodeOf[this.code];
  }
}

/**
 * The outcome of work stopped by its signal (Ctrl-C), as the user is to read
 * it: what was stopped and what was left ("copy interrupted; no tag was
 * set"). Code ABORTED. A lower-level cancellation (a request, an upload)
 * is a plain ABORTED error, which the CLI reports as its command's outcome.
 */
export class InterruptedError extends OciError {
  constructor(message: string, options: Omit<OciErrorOptions, 'hint'> & { hint?: string } = {}) {
    super('ABORTED', message, options);
    this.name = 'InterruptedError';
  }
}

/** True when `err` is an OciError, optionally with one of the given codes. */
export function isOciError(err: unknown, ...codes: ErrorCode[]): err is OciError {
  return err instanceof OciError && (codes.length === 0 || codes.includes(err.code));
}

/** A one-line description of any error, with the hint when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof OciError) return err.hint ? `${err.message} (${err.hint})` : err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Maps a Node.js file-system error to an OciError that names the path.
 * `source` is a read of what a location names (a layout directory, an
 * archive file): when it is not there, the error is NOT_FOUND.
 */
export function fsError(err: unknown, path: string, what: 'read' | 'write' | 'source'): OciError {
  const e = err as NodeJS.ErrnoException;
  const reason =
    e?.code === 'ENOENT'
      ? 'no such file or directory'
      : e?.code === 'EACCES' || e?.code === 'EPERM'
        ? 'permission denied'
        : e?.code === 'EISDIR'
          ? 'is a directory'
          : e?.code === 'ENOTDIR'
            ? 'a parent is not a directory'
            : e?.code === 'ENOSPC'
              ? 'no space left on device'
              : e?.code === 'EROFS'
                ? 'read-only file system'
                : (e?.message ?? String(err));
  return new OciError(
    what === 'write' ? 'OUTPUT_UNWRITABLE' : what === 'source' && e?.code === 'ENOENT' ? 'NOT_FOUND' : 'INPUT_UNREADABLE',
    `cannot ${what === 'write' ? 'write' : 'read'} ${path}: ${reason}`,
    { cause: err },
  );
}
