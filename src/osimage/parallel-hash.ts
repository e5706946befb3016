/**
 * Chunk hashes of a whole file computed on several threads: the file is cut
 * into ranges on chunk boundaries and each range is hashed by a worker. Used
 * to confirm that a payload is unchanged (a re-push), where hashing is the
 * only work left and one core would make it the bottleneck.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fsError, OciError } from '../errors.js';

/** The SHA-256 of every `chunkSize` bytes of the first `size` bytes of `path`, base64 without padding. */
export async function hashFileChunks(path: string, size: number, chunkSize: number, threads = Math.min(availableParallelism(), 8)): Promise<string[]> {
  const chunks = Math.ceil(size / chunkSize);
  if (chunks === 0) return [];
  // Loaded here, not with the module: push and build carry this file, and only a re-push hashes.
  // (require, not import(): a bundle keeps import() of a built-in, which its compiled script cannot run.)
  const { Worker } = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
  const parts = Math.max(1, Math.min(threads, chunks));
  const perPart = Math.ceil(chunks / parts);
  const jobs: Array<Promise<string[]>> = [];
  for (let p = 0; p < parts; p++) {
    const start = p * perPart * chunkSize;
    const end = Math.min(size, (p + 1) * perPart * chunkSize);
    if (start >= end) break;
    jobs.push(
      new Promise<string[]>((resolve, reject) => {
        const w = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData: { path, start, end, chunkSize } });
        w.once('message', (m: string[]) => resolve(m));
        w.once('error', (err) => reject(fsError(err, path, 'read')));
        w.once('exit', (code) => {
          if (code !== 0) reject(new OciError('INPUT_UNREADABLE', `hashing ${path} stopped (worker exit ${code})`));
        });
      }),
    );
  }
  return (await Promise.all(jobs)).flat();
}
