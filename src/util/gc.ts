/**
 * Returning buffer memory in time. Frames come back from the zstd binding
 * (and chunks pass through the uploader) as large buffers whose memory V8
 * barely weighs when it decides to collect; with a heap this small the
 * collector runs rarely and dead buffers pile up (tens of MiB over a
 * multi-GiB payload). A full collection every 16 MiB of data, once the
 * process is past 120 MiB resident, keeps the peak flat (2 GiB build: 180 →
 * about 135 MiB) and costs small payloads nothing.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

function loadGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

const gc = loadGc();

/**
 * Calls a full garbage collection when the process has grown past
 * `budgetBytes` of resident memory, checked every `everyBytes` of data
 * reported; a no-op where no collector is available.
 */
export class GcPacer {
  private since = 0;
  constructor(
    private readonly everyBytes = 16 << 20,
    private readonly budgetBytes = 120 << 20,
  ) {}

  /** Counts `bytes` of data passed through; collects once past the threshold and over budget. */
  add(bytes: number): void {
    this.since += bytes;
    if (this.since < this.everyBytes || !gc) return;
    this.since = 0;
    if (process.memoryUsage.rss() > this.budgetBytes) gc();
  }
}
