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
  | { type: 'blob-done'; id: string; name: string; digest: string; size: number; mediaType?: string; status: 'uploaded' | 'exists' | 'mounted' | 'written'; uploadedBytes: number }
  | { type: 'retry'; attempt: number; delayMs: number; reason: string }
  | { type: 'manifest'; digest: string; mediaType: string; size: number }
  | { type: 'tag'; tag: string; reference: string };

/** Receives progress events; must not throw. */
export type ProgressSink = (event: ProgressEvent) => void;

/** The copy hooks (copy.ts) that report a graph copy as progress events. */
export function copyProgress(progress: ProgressSink | undefined): {
  onBlobStart: (d: { digest: string; size: number; annotations?: Record<string, string> }) => void;
  onBlobProgress: (d: { digest: string; size: number }, bytes: number) => void;
  onBlobDone: (c: { kind: 'blob' | 'manifest'; digest: string; size: number; mediaType: string; status: 'uploaded' | 'exists' | 'mounted'; uploadedBytes?: number }) => void;
} {
  return {
    onBlobStart: (d) => progress?.({ type: 'blob-start', id: d.digest, name: d.annotations?.['org.opencontainers.image.title'] ?? d.digest.slice(7, 19), total: d.size }),
    onBlobProgress: (d, bytes) => progress?.({ type: 'blob-progress', id: d.digest, bytes, total: d.size }),
    onBlobDone: (c) =>
      progress?.(
        c.kind === 'manifest'
          ? { type: 'manifest', digest: c.digest, mediaType: c.mediaType, size: c.size }
          : { type: 'blob-done', id: c.digest, name: c.digest.slice(7, 19), digest: c.digest, size: c.size, mediaType: c.mediaType, status: c.status, uploadedBytes: c.uploadedBytes ?? 0 },
      ),
  };
}
