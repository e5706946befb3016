import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

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
