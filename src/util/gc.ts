/**
 * Returning buffer memory in time. Frames come back from the zstd binding
 * (and chunks pass through the uploader) as large buffers whose memory V8
 * barely weighs when it decides to collect; with a heap this small the
 * collector runs rarely and dead buffers pile up (tens of MiB over a
 * multi-GiB payload). Once the process is past 120 MiB resident, a young-
 * generation collection every 16 MiB of data frees them: the buffers die
 * young, and a scavenge costs a fraction of a millisecond where a full
 * collection of the CLI's heap costs several. A full collection every 64 checks
 * (every 1 GiB) catches the few that lived long enough to be promoted.
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

const gc = loadGc();

/**
 * Collects garbage when the process has grown past `budgetBytes` of
 * resident memory, checked every `everyBytes` of data reported: a young-
 * generation collection each time, a full one every `fullEvery` checks; a
 * no-op where no collector is available.
 */
export class GcPacer {
  private since = 0;
  private checks = 0;
  constructor(
    private readonly everyBytes = 16 << 20,
    private readonly budgetBytes = 120 << 20,
    private readonly fullEvery = 64,
  ) {}

  /** Counts `bytes` of data passed through; collects once past the threshold and over budget. */
  add(bytes: number): void {
    this.since += bytes;
    if (this.since < this.everyBytes || !gc) return;
    this.since = 0;
    if (process.memoryUsage.rss() <= this.budgetBytes) return;
    gc(++this.checks % this.fullEvery === 0 ? undefined : { type: 'minor' });
  }
}
