/**
 * The pieces of a blob upload that do not change while it runs: its
 * options and result, the session the registry opened, the `Range` answer
 * parser, and the signal that lets a chunk on the wire finish.
 */
import type { ByteSource } from '../content/store.js';
import type { Digest } from '../oci/digest.js';
import type { ReadAt } from './replay-source.js';

/** How long a request carrying chunk bytes may go on after the caller's signal (see ChunkedUpload.wire). */
export const wireGraceMs = 5_000;

/**
 * A signal that fires `ms` after `signal` does (never without `signal`), and
 * `dispose`, which takes the listener off `signal` again: one command's
 * signal serves every upload, and listeners left behind pile up.
 */
export function afterGrace(signal: AbortSignal | undefined, ms: number): { signal?: AbortSignal; dispose: () => void } {
  if (!signal) return { dispose: () => undefined };
  const c = new AbortController();
  const later = (): void => {
    setTimeout(() => c.abort(signal.reason), ms).unref();
  };
  if (signal.aborted) later();
  else signal.addEventListener('abort', later, { once: true });
  return { signal: c.signal, dispose: () => signal.removeEventListener('abort', later) };
}

/** An upload session the registry opened (202 to a POST or to a mount attempt). */
export interface UploadSession {
  location: URL;
  /** `OCI-Chunk-Min-Length`, when sent. */
  minChunkLength?: number;
}

/** Options of {@link ChunkedUpload}. */
export interface ChunkedUploadOptions {
  /** Told when a session could not be cancelled (its DELETE failed): the registry keeps it until it expires. */
  onNotCancelled?: () => void;
  /** Digest (and size) when known up front: verified before the upload is committed. */
  expected?: { digest: string; size?: number };
  /** Initial chunk size. Default {@link defaultChunkSizeFor} the host. */
  chunkSize?: number;
  /** Largest chunk the uploader grows to. Default 64 MiB. */
  maxChunkSize?: number;
  /** Restarts the source from byte 0 (for a lost session or a monolithic fallback with unknown digest). */
  reopen?: () => ByteSource | Promise<ByteSource>;
  /**
   * Reads the blob again from any offset (unverified: the upload hashes what
   * it sends). With `expected` digest and size, chunks stream from it and
   * nothing is held; the source given to the constructor is then not read.
   */
  readAt?: ReadAt;
  signal?: AbortSignal;
  /** Called with the number of bytes the registry has acknowledged. */
  onProgress?: (acknowledged: number) => void;
  /** Use this session instead of opening one (a mount answered 202). */
  session?: UploadSession;
  /** Name used in messages. Default `blob`. */
  what?: string;
}

/** What an upload did. */
export interface UploadResult {
  digest: Digest;
  size: number;
  /** Bytes sent in request bodies, re-sent ones included. */
  uploadedBytes: number;
  /** Bytes sent more than once. */
  resentBytes: number;
  /** Chunks acknowledged. */
  chunks: number;
  /** Recoveries after a failure (status checks followed by a resend). */
  resumes: number;
  /** Times the upload started over from byte 0 via `reopen()`. */
  restarts: number;
  /** `chunked`, or `monolithic` after a PATCH refusal. */
  mode: 'chunked' | 'monolithic';
  /** Chunk size in use at the end. */
  chunkSize: number;
}

/** The registry no longer knows the session (or lost acknowledged bytes). */
export class SessionLost extends Error {
  constructor(
    readonly reason: string,
    readonly original?: unknown,
  ) {
    super(reason);
  }
}

/** Parses `Range: 0-<end>` into the number of bytes the registry holds; `0-0` means 0 unless `ack` ≥ 1. */
export function parseUploadRange(header: string | undefined, ack: number): number | undefined {
  if (!header) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)/i.exec(header.trim());
  if (!m) return undefined;
  const end = Number(m[2]);
  if (end === 0 && Number(m[1]) === 0 && ack === 0) return 0;
  return end + 1;
}
