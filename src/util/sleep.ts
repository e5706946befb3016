import { OciError } from '../errors.js';

/** Waits `ms`, or rejects with ABORTED as soon as `signal` aborts (at once when it already has). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new OciError('ABORTED', 'cancelled'));
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new OciError('ABORTED', 'cancelled'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
