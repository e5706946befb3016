/**
 * Resolving layer entry paths inside an unpack directory without ever
 * leaving it. Names are split into components; absolute names and `..`
 * components are refused. Each parent component is looked up in the
 * directory as it is on disk: a directory is entered, a missing one is
 * created, and a symlink is followed only within the root — its target
 * read as the container would (an absolute target starts at the root) and
 * refused when it climbs above the root. The final
 * component is never followed: callers replace what is there.
 */
import { lstat, mkdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { OciError } from '../errors.js';

const MAX_LINKS = 40;

function refuse(entry: string, why: string): OciError {
  return new OciError('INVALID_FORMAT', `layer entry "${entry}" ${why}; refusing to unpack it`);
}

/** The components of an entry name; throws INVALID_FORMAT for absolute names and `..`. Empty for the root. */
export function entryComponents(name: string, what = name): string[] {
  if (name.startsWith('/')) throw refuse(what, 'is an absolute path');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw refuse(what, 'has a ".." component that would leave the directory');
  return parts;
}

/**
 * The host path of the directory `components` names below `root`, created
 * (mode 0755) where missing. Components are taken one at a time; a symlink
 * puts its target's components in front of the rest (an absolute target
 * restarts at the root), so `..` after a symlink means what the kernel
 * would make of it — except that climbing above the root is refused.
 * `entry` names the layer entry in errors.
 */
export async function resolveDirectory(root: string, components: string[], entry: string): Promise<{ host: string; path: string[] }> {
  const queue = [...components];
  const path: string[] = [];
  let links = 0;
  let lastLink = '';
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === '..') {
      // Only symlink targets bring `..` (entry names with it are refused earlier).
      if (path.length === 0) throw refuse(entry, `would be written through symlink ${lastLink}, which points outside the directory`);
      path.pop();
      continue;
    }
    const next = join(root, ...path, c);
    let st;
    try {
      st = await lstat(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(next, { mode: 0o755 });
      path.push(c);
      continue;
    }
    if (st.isDirectory()) {
      path.push(c);
    } else if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw refuse(entry, 'passes through too many symlinks');
      const target = await readlink(next);
      lastLink = `${[...path, c].join('/')} -> ${target}`;
      if (target.startsWith('/')) path.length = 0;
      queue.unshift(...target.split('/').filter((t) => t !== '' && t !== '.'));
    } else {
      throw refuse(entry, `has ${[...path, c].join('/')} as a parent, which is not a directory`);
    }
  }
  return { host: join(root, ...path), path };
}
