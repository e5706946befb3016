import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** How many of this process's file descriptors are open on `path` (Linux: read from /proc/self/fd). */
export async function openFilesOn(path: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(join('/proc/self/fd', fd)).catch(() => '')) === path) n++;
  }
  return n;
}
