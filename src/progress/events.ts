/**
 * Progress events, emitted by the library and rendered by the CLI (live
 * lines on a terminal, plain lines in logs, JSON lines for pipelines).
 */

/**
 * What happened to one blob or manifest at its destination: `uploaded`
 * (bytes went over the network), `written` (bytes stored locally), `exists`
 * (already there), `mounted` (cross-repository mount, nothing sent).
 */
export type BlobStatus = 'uploaded' | 'exists' | 'mounted' | 'written';

/** One event. `id` identifies a blob in flight (payload name or digest). */
export type ProgressEvent =
  | { type: 'blob-start'; id: string; name: string; total?: number }
  /** `bytes`: bytes of the blob's source processed so far (cumulative), out of `total`. */
  | { type: 'blob-progress'; id: string; bytes: number; total?: number }
  | { type: 'blob-done'; id: string; name: string; digest: string; size: number; mediaType?: string; status: BlobStatus; uploadedBytes: number }
  | { type: 'retry'; attempt: number; delayMs: number; reason: string }
  | { type: 'manifest'; digest: string; mediaType: string; size: number }
  | { type: 'tag'; tag: string; reference: string };

/** Receives progress events; must not throw. */
export type ProgressSink = (event: ProgressEvent) => void;
