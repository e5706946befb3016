/**
 * Resolving layer entry paths inside an unpack directory without ever
 * leaving it. Names are split into components; absolute names and `..`
 * components are refused. Each parent component is looked up in the
 * directory as it is on disk: a directory is entered, a missing one is
 * created, and a symlink is followed only within the root — its target
 * read as the container would (an absolute target starts at the root) and
 * refused when a relative target climbs above the root. The final
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
 * (mode 0755) where missing. `entry` names the layer entry in errors.
 */
export async function resolveDirectory(root: string, components: string[], entry: string, depth = 0): Promise<{ host: string; path: string[] }> {
  let host = root;
  let path: string[] = [];
  for (let i = 0; i < components.length; i++) {
    const c = components[i]!;
    const next = join(host, c);
    let st;
    try {
      st = await lstat(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(next, { mode: 0o755 });
      host = next;
      path = [...path, c];
      continue;
    }
    if (st.isDirectory()) {
      host = next;
      path = [...path, c];
    } else if (st.isSymbolicLink()) {
      if (depth >= MAX_LINKS) throw refuse(entry, 'passes through too many symlinks');
      const target = await readlink(next);
      const resolved: string[] = target.startsWith('/') ? [] : [...path];
      for (const t of target.split('/')) {
        if (t === '' || t === '.') continue;
        if (t === '..') {
          if (resolved.length === 0) throw refuse(entry, `would be written through symlink ${[...path, c].join('/')} -> ${target}, which points outside the directory`);
          resolved.pop();
        } else resolved.push(t);
      }
      const r = await resolveDirectory(root, resolved, entry, depth + 1);
      host = r.host;
      path = r.path;
    } else {
      throw refuse(entry, `has ${[...path, c].join('/')} as a parent, which is not a directory`);
    }
  }
  return { host, path };
}
