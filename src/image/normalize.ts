/**
 * The normalization every layer gets, whatever it is made from: numeric
 * owners (optionally all set to one `UID:GID`), modification times clamped
 * to SOURCE_DATE_EPOCH (reproducible-builds.org) and no other timestamps,
 * and paths dropped by `--exclude` patterns.
 */
import { OciError } from '../errors.js';

/** How entries are normalized. Zero values mean "keep". */
export interface NormalizeOptions {
  /** Clamp every mtime to at most this many seconds since the epoch. */
  sourceDateEpoch?: number;
  /** Set every entry's owner to this (default: keep the numeric owner). */
  owner?: { uid: number; gid: number };
  /** Entries whose path (relative, no leading `/`, directories without trailing `/`) matches any pattern are dropped, with their contents. */
  exclude?: RegExp[];
}

/** The mtime an entry gets: whole seconds, clamped to the epoch when there is one. */
export function normalizeMtime(seconds: number, epoch: number | undefined): number {
  const s = Math.floor(Number.isFinite(seconds) ? seconds : 0);
  return epoch !== undefined && s > epoch ? epoch : Math.max(0, s);
}

/** Whether a relative path is excluded. */
export function isExcluded(path: string, exclude: RegExp[] | undefined): boolean {
  if (!exclude || exclude.length === 0) return false;
  const p = path.replace(/\/$/, '');
  return exclude.some((re) => re.test(p));
}

/** Parses `UID:GID` (numbers); throws INVALID_ARGUMENT. */
export function parseOwner(text: string): { uid: number; gid: number } {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(text.trim());
  const uid = Number(m?.[1]);
  const gid = Number(m?.[2]);
  if (!m || uid > 0xffffffff || gid > 0xffffffff) {
    throw new OciError('INVALID_ARGUMENT', `invalid owner "${text}": use numeric UID:GID, e.g. 0:0`);
  }
  return { uid, gid };
}

/** Parses a SOURCE_DATE_EPOCH value (whole seconds since 1970); throws INVALID_ARGUMENT naming where it came from. */
export function parseSourceDateEpoch(text: string, from: string): number {
  if (!/^\d{1,12}$/.test(text.trim())) {
    throw new OciError('INVALID_ARGUMENT', `invalid ${from} "${text}": use whole seconds since 1970-01-01 UTC, e.g. 1700000000`);
  }
  return Number(text.trim());
}

/** Compiles `--exclude` patterns; throws INVALID_ARGUMENT naming the bad one. */
export function compileExcludes(patterns: string[] | undefined): RegExp[] {
  return (patterns ?? []).map((p) => {
    try {
      return new RegExp(p);
    } catch (err) {
      throw new OciError('INVALID_ARGUMENT', `invalid --exclude pattern "${p}": ${(err as Error).message}`);
    }
  });
}
