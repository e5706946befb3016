import { OciError } from '../errors.js';

const units: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/**
 * Parses a byte size: a plain number of bytes (`1048576`) or a number with a
 * unit (`4MiB`, `512KiB`, `5MB`; K/M/G alone are binary). Throws
 * INVALID_ARGUMENT naming `what` otherwise.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2]?.toLowerCase() ?? '';
  if (!m || !(unit in units)) {
    throw new OciError('INVALID_ARGUMENT', `invalid ${what} "${text}": use bytes (1048576) or a number with KiB, MiB or GiB (4MiB)`);
  }
  const value = Number(m[1]) * units[unit]!;
  if (!Number.isSafeInteger(value)) throw new OciError('INVALID_ARGUMENT', `invalid ${what} "${text}": not a whole number of bytes`);
  return value;
}

/** Formats a byte count for people: `1.5 GiB`. */
export function formatSize(n: number): string {
  const steps = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < steps.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${steps[i]}`;
}
