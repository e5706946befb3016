/**
 * Resolving layer entry paths inside an unpack directory without ever
 * leaving it. Names are split into components; absolute names and `..`
 * components are refused. Each parent component is looked up in the
 * directory as it is on disk: a directory is entered, a missing one is
 * created, and a symlink is followed only within the root — its target
 * read as the container would (an absolute target starts at the root) and
 * refused when it climbs above the root. The final
 * component is never followed: callers replace what is there.
 * Names that are not UTF-8 are handled as their bytes (tar/reader.ts): a
 * component is text when UTF-8 and bytes otherwise, and a host path becomes
 * bytes from the first such component down, so every check here is made on
 * the exact bytes the kernel will see.
 */
import { lstat, mkdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { OciError } from '../errors.js';
import { type NamePart, nameParts, shownName } from './tar/reader.js';

const MAX_LINKS = 40;
const SLASH = Buffer.from('/');

/** A path on the host: text, or bytes when a component of it is not UTF-8. */
export type HostPath = string | Buffer;

function refuse(entry: string, why: string): OciError {
  return new OciError('INVALID_FORMAT', `layer entry "${entry}" ${why}; refusing to unpack it`);
}

/** `dir` and `parts` joined with `/`; text (through path.join, as before names could be bytes) while every piece is text. */
export function joinHost(dir: HostPath, ...parts: NamePart[]): HostPath {
  if (typeof dir === 'string' && parts.every((p) => typeof p === 'string')) return join(dir, ...(parts as string[]));
  const pieces = [Buffer.from(dir)];
  for (const p of parts) {
    if (pieces[pieces.length - 1]!.at(-1) !== 0x2f) pieces.push(SLASH);
    pieces.push(Buffer.from(p));
  }
  return Buffer.concat(pieces);
}

/**
 * The components of an entry name (its bytes when they are not UTF-8);
 * throws INVALID_FORMAT for absolute names and `..`. Empty for the root.
 * `what` names the entry in errors.
 */
export function entryComponents(name: string | Buffer, what = shownName(name)): NamePart[] {
  if (typeof name === 'string' ? name.startsWith('/') : name[0] === 0x2f) throw refuse(what, 'is an absolute path');
  const parts = nameParts(name);
  if (parts.includes('..')) throw refuse(what, 'has a ".." component that would leave the directory');
  return parts;
}

/**
 * The host path of the directory `components` names below `root`, created
 * (mode 0755) where missing. Components are taken one at a time; a symlink
 * puts its target's components in front of the rest (an absolute target
 * restarts at the root), so `..` after a symlink means what the kernel
 * would make of it — except that climbing above the root is refused.
 * Targets are read as bytes: one that is not UTF-8 leads where the kernel
 * would go, not to a name with U+FFFD in it.
 * `entry` names the layer entry in errors.
 */
export async function resolveDirectory(root: string, components: NamePart[], entry: string): Promise<{ host: HostPath; path: NamePart[] }> {
  const queue = [...components];
  const path: NamePart[] = [];
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
    const next = joinHost(root, ...path, c);
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
      const target = await readlink(next, { encoding: 'buffer' });
      lastLink = `${[...path, c].map(shownName).join('/')} -> ${shownName(target)}`;
      if (target[0] === 0x2f) path.length = 0;
      queue.unshift(...nameParts(target));
    } else {
      throw refuse(entry, `has ${[...path, c].map(shownName).join('/')} as a parent, which is not a directory`);
    }
  }
  return { host: joinHost(root, ...path), path };
}
