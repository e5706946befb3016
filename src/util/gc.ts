/**
 * Returning buffer memory in time. Frames come back from the zstd binding
 * (and chunks pass through the uploader) as large buffers whose memory V8
 * barely weighs when it decides to collect; with a heap this small the
 * collector runs rarely and dead buffers pile up (tens of MiB over a
 * multi-GiB payload). Once the process has grown 32 MiB past what it took
 * before data started to flow, a young-generation collection every 16 MiB of
 * data frees them: the buffers die young, and a scavenge costs a fraction of
 * a millisecond where a full collection of the CLI's heap costs several (and
 * stalls the thread that feeds the compressors). Past 48 MiB of growth a
 * full collection catches what lived long enough to be promoted.
 *
 * The budgets are growth, not absolute sizes, because what the runtime
 * itself takes differs by 10 MiB between Node.js 20 and 24: absolute ones
 * either let a payload's buffers pile up on one or run full collections
 * back to back on the other.
 */
import { createRequire } from 'node:module';

// Loaded with the first collection: most commands never move enough data for one.
const require = createRequire(import.meta.url);

type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;

function loadGc(): GcFunction | undefined {
  const existing = (globalThis as { gc?: GcFunction }).gc;
  if (typeof existing === 'function') return existing;
  const { setFlagsFromString } = require('node:v8') as typeof import('node:v8');
  // Loaded before the flag changes, so that it compiles from Node's cache (see the finally block).
  const { runInNewContext } = require('node:vm') as typeof import('node:vm');
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  } finally {
    // The context made above keeps its gc(). With the flag back, code compiled from here on can
    // still come from a cache: V8 takes cached code only under flags like those it was made with.
    setFlagsFromString('--no-expose-gc');
  }
}

// Found on the first collection, not at import: turning on --expose-gc, even
// for a moment, is a process-wide change that only a command moving payload
// data should make.
let gc: GcFunction | undefined | null = null;

/** Resident bytes when the first pacer was made: the runtime and the code, before any payload data. */
let baseline: number | undefined;

/**
 * Collects garbage when the process has grown more than `headroomBytes`
 * past {@link baseline}, checked every `everyBytes` of data reported: a
 * young-generation collection while it stays under `fullHeadroomBytes` of
 * growth, a full one past that (buffers promoted before they died); a no-op
 * where no collector is available.
 */
export class GcPacer {
  private since = 0;
  constructor(
    private readonly everyBytes = 16 << 20,
    private readonly headroomBytes = 32 << 20,
    private readonly fullHeadroomBytes = 48 << 20,
  ) {
    baseline ??= process.memoryUsage.rss();
  }

  /** Counts `bytes` of data passed through; collects once past the threshold and over budget. */
  add(bytes: number): void {
    this.since += bytes;
    if (this.since < this.everyBytes) return;
    this.since = 0;
    if (gc === null) gc = loadGc();
    if (!gc) return;
    const grown = process.memoryUsage.rss() - (baseline ?? 0);
    if (grown > this.fullHeadroomBytes) gc();
    else if (grown > this.headroomBytes) gc({ type: 'minor' });
  }
}
