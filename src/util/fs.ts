import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Creates a directory and its missing parents. Unlike `mkdir({recursive})`
 * it gives up after one retry per level, so a file system that answers
 * ENOENT for a parent that exists (as /proc does) ends in an error, not a loop.
 */
export async function makeDirs(path: string): Promise<void> {
  try {
    await mkdir(path);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw err;
  }
  await makeDirs(dirname(path));
  try {
    await mkdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Makes the entries of a directory durable (renames into it included).
 * Where directories cannot be synced (some platforms and file systems
 * refuse it), the files themselves were synced and that has to do.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
  } finally {
    await fh?.close();
  }
}

/** How writeFileAtomic writes. */
export interface WriteFileAtomicOptions {
  /** The file's permissions, set exactly (the umask does not apply); default 0o666 less the umask. */
  mode?: number;
  /**
   * The temporary file to write, on the target's file system (a rename does
   * not cross file systems). Default: a hidden name beside the target. A
   * store that sweeps temporaries of killed writers names it where it looks.
   */
  temp?: string;
  /**
   * Makes the target's missing parent directories, once the bytes are safely
   * in the temporary file: a write that fails leaves no directory behind.
   * Without it the target's directory must exist.
   */
  makeParents?: boolean;
}

/**
 * Replaces `path` by `data` so that readers, and a system that loses power,
 * see the old content or the new one, never a part: the bytes go to a
 * temporary file, which is flushed to disk and renamed over `path`; then the
 * directory is flushed, so the rename itself survives a crash. On a failure
 * before the rename the temporary file is removed and `path` keeps what it
 * had.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: WriteFileAtomicOptions = {}): Promise<void> {
  const tmp = options.temp ?? join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    // Exclusive: a temporary name that is somehow taken is neither written through nor removed.
    const fh = await open(tmp, 'wx', options.mode ?? 0o666);
    created = true;
    try {
      // writeFile goes on until every byte is written or a write fails.
      await fh.writeFile(data);
      if (options.mode !== undefined) await fh.chmod(options.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.makeParents) await mkdir(dirname(path), { recursive: true });
    await rename(tmp, path);
  } catch (err) {
    if (created) await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}

/**
 * Identifies a file as found: one replaced (another inode) or written to
 * (size, mtime) does not look the same. A layout's blob checked once is not
 * hashed again while its key stays. With `ctime`, a change that restored
 * mtime or touched only metadata counts too: an archive writer, which reads
 * the archive again when it changed, would rather read it once too often.
 */
export function fileKey(st: Stats, options: { ctime?: boolean } = {}): string {
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  return options.ctime ? `${key}:${st.ctimeMs}` : key;
}
