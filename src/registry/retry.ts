/**
 * Retry policy: exponential backoff with jitter, `Retry-After` honoured and
 * capped (RFC 9110 §10.2.3; distribution-spec `TOOMANYREQUESTS`). The delay
 * function is injectable so tests run without waiting.
 */
import { OciError } from '../errors.js';

/** Options of {@link RetryPolicy}; every field has a default. */
export interface RetryOptions {
  /** Retries after the first attempt. Default 5. */
  retries?: number;
  /** First backoff delay in ms. Default 250. */
  baseDelayMs?: number;
  /** Largest backoff delay in ms. Default 8000. */
  maxDelayMs?: number;
  /** Largest `Retry-After` honoured, in ms. Default 60000. */
  maxRetryAfterMs?: number;
  /** Waits `ms` (tests pass a function that records and returns at once). Rejects when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Random source in [0, 1) for the jitter. Default Math.random. */
  random?: () => number;
  /** Told about every retry before its wait (for progress output); never given credentials. */
  onRetry?: (event: RetryEvent) => void;
}

/** One retry, as reported to {@link RetryOptions.onRetry}. */
export interface RetryEvent {
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  /** What failed, in a few words (`HTTP 503`, `connection reset`). */
  reason: string;
}

/** HTTP statuses worth retrying: timeouts, rate limits and gateway/server hiccups. */
export const retryableStatuses: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/**
 * Parses `Retry-After` (delay-seconds or an HTTP date) into milliseconds from
 * `now`. A number is seconds, decimals too (some servers send `1.5`), which
 * Date.parse would otherwise read as a date in 2001. Only a value with
 * letters can be an HTTP date (they all name the month): anything else that
 * is not a number (`-1`, `1e3`) is ignored.
 */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^(\d+\.?\d*|\.\d+)$/.test(v)) return Math.round(Number(v) * 1000);
  if (!/[a-z]/i.test(v)) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new OciError('ABORTED', 'cancelled'));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new OciError('ABORTED', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** When and whether to try again. */
export class RetryPolicy {
  readonly retries: number;
  private readonly base: number;
  private readonly max: number;
  private readonly maxRetryAfter: number;
  private readonly sleepFn: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly onRetry?: (event: RetryEvent) => void;

  constructor(options: RetryOptions = {}) {
    this.retries = options.retries ?? 5;
    this.base = options.baseDelayMs ?? 250;
    this.max = options.maxDelayMs ?? 8000;
    this.maxRetryAfter = options.maxRetryAfterMs ?? 60_000;
    this.sleepFn = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    this.onRetry = options.onRetry;
  }

  /** Whether a status is worth another attempt. */
  isRetryableStatus(status: number): boolean {
    return retryableStatuses.has(status);
  }

  /**
   * Delay before retry number `attempt` (0-based): `Retry-After` when the
   * server gave one (capped), else base·2^attempt capped, with "equal jitter"
   * (half fixed, half random).
   */
  delayFor(attempt: number, retryAfterMs?: number): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.maxRetryAfter);
    const exp = Math.min(this.max, this.base * 2 ** attempt);
    return Math.round(exp / 2 + (exp / 2) * this.random());
  }

  /** Waits before retry number `attempt`; `reason` says what failed. */
  wait(attempt: number, retryAfterMs?: number, signal?: AbortSignal, reason = 'request failed'): Promise<void> {
    const delayMs = this.delayFor(attempt, retryAfterMs);
    try {
      this.onRetry?.({ attempt: attempt + 1, delayMs, reason });
    } catch {
      // A reporting callback must never break an upload.
    }
    return this.sleepFn(delayMs, signal);
  }
}
