/**
 * The lock file that writers of one layout (index.json.lock) or one archive
 * (FILE.lock) take turns on, across processes.
 *
 * Our own rather than a library's (proper-lockfile and the like lock with a
 * directory and judge staleness by time alone): the lock is a plain file
 * holding its holder's owner tag (owner.ts: pid and start time), so a lock
 * whose holder was killed is taken over at once, not after a timeout; one
 * that is merely old is taken over too (a pid may be reused); a holder that
 * takes long keeps it fresh; and locks written by older versions, which
 * hold a bare pid, are understood.
 */

import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, open, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fsError, OciError } from '../errors.js';
import { ownerAlive, ownerTag } from './owner.js';

/** A lock this old is taken over even when its holder seems alive (its pid may be reused). */
const LOCK_STALE_MS = 30_000;
/** How long a writer waits for the lock by default; longer than LOCK_STALE_MS, so a stale lock is always taken over first. */
export const LOCK_WAIT_MS = 60_000;

/** How withLockFile waits, and what it names. */
export interface LockFileOptions {
  /** How long to wait for another holder, in milliseconds (default 60 s). */
  wait?: number;
  /** What the lock guards, as messages name it ("layout DIR", "archive FILE"). */
  what: string;
  /** Makes the lock's directory again when it is missing; without it, a missing directory fails. */
  missing?: () => Promise<void>;
}

/**
 * Runs `fn` holding a lock: a file created exclusively (O_EXCL), holding the
 * owner tag (pid and start time, owner.ts) of its holder. A lock whose holder is gone, or older than
 * LOCK_STALE_MS, is taken over; otherwise this waits up to `wait` ms and
 * then fails naming the lock file. While `fn` runs the lock's time is
 * renewed, so a holder that takes long (packing a large archive) is not
 * taken for stale.
 */
export async function withLockFile<T>(lock: string, fn: () => Promise<T>, options: LockFileOptions): Promise<T> {
  const token = `${ownerTag()} ${randomBytes(8).toString('hex')}\n`;
  await acquire(lock, token, options);
  const stopRenewing = keepFresh(lock, token);
  try {
    return await fn();
  } finally {
    stopRenewing();
    // Only a lock that is still this one is removed (a stale takeover may have replaced it).
    if (await holds(lock, token)) await unlink(lock).catch(() => {});
  }
}

/** Creates the lock file holding `token`, taking over a stale one and waiting (backing off) for a live one. */
async function acquire(lock: string, token: string, options: LockFileOptions): Promise<void> {
  const wait = options.wait ?? LOCK_WAIT_MS;
  const deadline = Date.now() + wait;
  let delay = 5;
  let missing = 0;
  for (;;) {
    try {
      await writeFile(lock, token, { flag: 'wx' });
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && options.missing && missing++ < 3) {
        await options.missing().catch(() => {});
        continue;
      }
      if (code !== 'EEXIST') throw fsError(err, lock, 'write');
    }
    if (await takeOverStale(lock)) continue;
    if (Date.now() >= deadline) {
      throw new OciError(
        'OUTPUT_UNWRITABLE',
        `${options.what} is locked by another writer (${lock}); gave up after ${wait < 1000 ? `${wait} ms` : `${Math.round(wait / 1000)} s`}`,
        {
          hint: `if no oci-os process is writing to it, remove ${lock}`,
        },
      );
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 200);
  }
}

/** Whether the lock file is still the one holding `token`. */
async function holds(lock: string, token: string): Promise<boolean> {
  return (await readFile(lock, 'utf8').catch(() => undefined)) === token;
}

/** Renews the lock's time while it is held, so waiters do not take it for stale; returns what stops it. */
function keepFresh(lock: string, token: string): () => void {
  const renew = setInterval(() => {
    void holds(lock, token)
      .then((yes) => (yes ? utimes(lock, new Date(), new Date()) : undefined))
      .catch(() => {});
  }, LOCK_STALE_MS / 3);
  renew.unref();
  return () => clearInterval(renew);
}

/**
 * Removes a lock left by a holder that is gone, or held too long. The lock
 * is first renamed to a name of its own, so two waiters cannot both remove
 * it, and removed only if it is still the file that was judged stale.
 * True when the lock was gone or removed (try again at once).
 */
async function takeOverStale(lock: string): Promise<boolean> {
  let st: Stats;
  let text: string;
  try {
    const fh = await open(lock, 'r');
    try {
      st = await fh.stat();
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  // The holder's owner tag (owner.ts); older versions wrote the pid alone.
  const holder = text.trim().split(/\s+/)[0] ?? '';
  const stale = Date.now() - st.mtimeMs > LOCK_STALE_MS || !ownerAlive(holder);
  if (!stale) return false;
  const moved = `${lock}.stale-${randomBytes(8).toString('hex')}`;
  try {
    await rename(lock, moved);
  } catch {
    return true;
  }
  const same = await stat(moved).then(
    (m) => m.ino === st.ino && m.dev === st.dev,
    () => false,
  );
  if (!same) {
    // A new holder's lock was moved: put back unless yet another one took its place.
    await link(moved, lock).catch(() => {});
  }
  await unlink(moved).catch(() => {});
  return true;
}
