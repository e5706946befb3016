/**
 * Returning buffer memory in time. Frames come back from the zstd binding
 * (and chunks pass through the uploader) as large buffers whose memory V8
 * barely weighs when it decides to collect; with a heap this small the
 * collector runs rarely and dead buffers pile up (tens of MiB over a
 * multi-GiB payload). Once the process is past 120 MiB resident, a young-
 * generation collection every 16 MiB of data frees them: the buffers die
 * young, and a scavenge costs a fraction of a millisecond where a full
 * collection of the CLI's heap costs several (and stalls the thread that
 * feeds the compressors). Past 136 MiB a full collection catches what lived
 * long enough to be promoted.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;

function loadGc(): GcFunction | undefined {
  const existing = (globalThis as { gc?: GcFunction }).gc;
  if (typeof existing === 'function') return existing;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  }
}

// Found on the first collection, not at import: turning on --expose-gc is a
// process-wide change that only a command moving payload data should make.
let gc: GcFunction | undefined | null = null;

/**
 * Collects garbage when the process has grown past `budgetBytes` of
 * resident memory, checked every `everyBytes` of data reported: a young-
 * generation collection while it stays under `fullBudgetBytes`, a full one
 * past that (buffers promoted before they died); a no-op where no collector
 * is available.
 */
export class GcPacer {
  private since = 0;
  constructor(
    private readonly everyBytes = 16 << 20,
    private readonly budgetBytes = 120 << 20,
    private readonly fullBudgetBytes = 136 << 20,
  ) {}

  /** Counts `bytes` of data passed through; collects once past the threshold and over budget. */
  add(bytes: number): void {
    this.since += bytes;
    if (this.since < this.everyBytes) return;
    this.since = 0;
    if (gc === null) gc = loadGc();
    if (!gc) return;
    const rss = process.memoryUsage.rss();
    if (rss > this.fullBudgetBytes) gc();
    else if (rss > this.budgetBytes) gc({ type: 'minor' });
  }
}
