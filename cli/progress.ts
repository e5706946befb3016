/**
 * Renders progress events: on a terminal, one live line per blob in flight
 * plus a total; in logs, a line per finished blob and a summary every few
 * seconds (no control characters); `json`, one JSON object per line; `none`
 * prints nothing. Everything goes to stderr, so stdout stays the result.
 */
import { Flags } from '@oclif/core';
import type { ProgressEvent, ProgressSink } from '../src/progress/events.js';
import { formatSize } from '../src/util/size.js';
import type { FlagValues } from './base.js';
import { prose } from './prose.js';

export type ProgressMode = 'tty' | 'plain' | 'json' | 'none';

export const progressFlags = {
  progress: Flags.option({
    options: ['auto', 'tty', 'plain', 'json', 'none'] as const satisfies ReadonlyArray<ProgressMode | 'auto'>,
    default: 'auto',
    description: prose`Progress on stderr: auto (live lines on a terminal, plain lines otherwise), tty, plain, json
      (JSON lines: blob-start, blob-progress, blob-done, retry, manifest, tag) or none.`,
    helpGroup: 'OUTPUT',
  })(),
  quiet: Flags.boolean({ char: 'q', description: 'Print only the result (same as --progress none).', helpGroup: 'OUTPUT' }),
};

interface Flight {
  name: string;
  bytes: number;
  total?: number;
  started: number;
}

function rate(bytes: number, ms: number): string {
  return ms > 0 ? `${formatSize((bytes * 1000) / ms)}/s` : '';
}

function eta(bytes: number, total: number | undefined, ms: number): string {
  if (!total || bytes <= 0 || bytes >= total) return '';
  const s = Math.round(((total - bytes) * ms) / bytes / 1000);
  return s >= 60 ? `ETA ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `ETA ${s}s`;
}

/** Renders events for one command run. Call close() before printing the result. */
export class ProgressRenderer {
  private readonly flights = new Map<string, Flight>();
  private drawn = 0;
  private lastDraw = 0;
  private timer?: NodeJS.Timeout;
  private doneBytes = 0;
  private doneCount = 0;
  private readonly start = Date.now();

  constructor(
    readonly mode: ProgressMode,
    private readonly out: NodeJS.WriteStream = process.stderr,
    summaryEveryMs = 10_000,
  ) {
    if (mode === 'plain') {
      this.timer = setInterval(() => this.summary(), summaryEveryMs);
      this.timer.unref();
    }
  }

  /** Picks the mode from the flags and whether stderr is a terminal. */
  static fromFlags(flags: Partial<FlagValues<typeof progressFlags>> & { json?: boolean }, out: NodeJS.WriteStream = process.stderr): ProgressRenderer {
    let mode: ProgressMode;
    if (flags.quiet) mode = 'none';
    else if (!flags.progress || flags.progress === 'auto') mode = out.isTTY && !flags.json ? 'tty' : flags.json ? 'none' : 'plain';
    else mode = flags.progress;
    return new ProgressRenderer(mode, out);
  }

  /** The sink to hand to the library. */
  readonly sink: ProgressSink = (e) => {
    try {
      this.handle(e);
    } catch {
      // Output problems (a closed pipe) must not break the work.
    }
  };

  private handle(e: ProgressEvent): void {
    if (this.mode === 'none') return;
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify({ ...e, time: new Date().toISOString() })}\n`);
      return;
    }
    switch (e.type) {
      case 'blob-start':
        this.flights.set(e.id, { name: e.name, bytes: 0, total: e.total, started: Date.now() });
        break;
      case 'blob-progress': {
        const f = this.flights.get(e.id);
        if (f) {
          f.bytes = e.bytes;
          if (e.total !== undefined) f.total = e.total;
        }
        break;
      }
      case 'blob-done': {
        const f = this.flights.get(e.id);
        this.flights.delete(e.id);
        this.doneBytes += e.uploadedBytes;
        this.doneCount++;
        const how = e.status === 'uploaded' ? (e.uploadedBytes > 0 ? `uploaded ${formatSize(e.uploadedBytes)}` : 'copied') : e.status;
        const took = f ? ` in ${((Date.now() - f.started) / 1000).toFixed(1)}s` : '';
        this.line(`${f?.name ?? e.name} ${e.digest.slice(0, 19)} ${formatSize(e.size)} ${how}${took}`);
        break;
      }
      case 'retry':
        this.line(`retry ${e.attempt} in ${(e.delayMs / 1000).toFixed(1)}s: ${e.reason}`);
        break;
      case 'manifest':
        this.line(`manifest ${e.digest}`);
        break;
      case 'tag':
        this.line(`tagged ${e.reference}`);
        break;
    }
    if (this.mode === 'tty') this.redraw(e.type !== 'blob-progress');
  }

  /** Prints a permanent line above the live ones. */
  private line(text: string): void {
    if (this.mode === 'tty') this.clear();
    this.out.write(`${text}\n`);
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private redraw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.clear();
    if (this.flights.size === 0) return;
    const cols = this.out.columns || 100;
    const lines: string[] = [];
    let bytes = 0;
    let total = 0;
    for (const f of this.flights.values()) {
      const ms = now - f.started;
      bytes += f.bytes;
      total += f.total ?? 0;
      const of = f.total !== undefined ? `/${formatSize(f.total)}` : '';
      lines.push(`  ${f.name}  ${formatSize(f.bytes)}${of}  ${rate(f.bytes, ms)}  ${eta(f.bytes, f.total, ms)}`.slice(0, cols - 1));
    }
    lines.push(`  total ${formatSize(bytes)}${total ? `/${formatSize(total)}` : ''}, ${this.doneCount} blob(s) done`.slice(0, cols - 1));
    this.out.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }

  private summary(): void {
    if (this.flights.size === 0) return;
    let bytes = 0;
    let total = 0;
    for (const f of this.flights.values()) {
      bytes += f.bytes;
      total += f.total ?? 0;
    }
    const pct = total ? ` (${Math.floor((bytes / total) * 100)}%)` : '';
    const of = total ? ` of ${formatSize(total)}` : '';
    const speed = rate(bytes + this.doneBytes, Date.now() - this.start);
    this.out.write(`progress: ${this.flights.size} blob(s) in flight, ${formatSize(bytes)}${of}${pct}, ${this.doneCount} done, ${speed}\n`);
  }

  /** Stops the timer and removes the live lines. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.mode === 'tty') this.clear();
  }
}
