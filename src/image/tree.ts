/**
 * Walking a directory tree into normalized tar entries: depth first, each
 * directory's children sorted by the bytes of their names (as
 * `tar --sort=name` does), parents before children, no entry for the root
 * itself. A file seen again by device and inode becomes a hard-link entry
 * to the first path. Regular files, directories (empty ones too),
 * symlinks, device nodes and FIFOs are kept; sockets cannot be stored in
 * tar and are skipped. Names are read as bytes: a Linux file name is any
 * bytes but `/` and NUL, and one that is not UTF-8 cannot pass through a
 * string (the lstat of the mangled name would fail), so from such a name
 * down, paths are Buffers and entries carry their exact bytes in
 * `rawName` (excludes then see the name with U+FFFD). Paths the build
 * writes to (`leaveOut`, by real path) are skipped like excluded ones.
 * Memory: one directory listing per level and the hard-link table.
 */
import { isUtf8 } from 'node:buffer';
import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';
import { fsError, OciError } from '../errors.js';
import { isExcluded, type NormalizeOptions, normalizeMtime } from './normalize.js';
import { joinHost } from './secure-path.js';
import type { TarEntry, TarEntryType } from './tar/header.js';
import { nameKey, shownName } from './tar/reader.js';
import { readTreeXattrs } from './xattrs.js';

/** An entry of a walked tree; `source` is the file to read content from (bytes when its path is not UTF-8). */
export interface TreeEntry {
  entry: TarEntry;
  source?: string | Buffer;
}

/** A path the build is writing, left out of any tree that holds it (see publish.ts). */
export interface LeftOutPath {
  /** Real path of a file or directory, left out with everything below it. */
  path: string;
  /** Its siblings whose names start with this are left out too (temporary files written beside it). */
  siblingPrefix?: string;
}

/** How a tree is walked: normalized, and without the paths the build is writing. */
export interface TreeOptions extends NormalizeOptions {
  leaveOut?: LeftOutPath[];
}

/**
 * Which relative names of the tree at `root` are left out; undefined when
 * none can be. The walk follows no symlink below the root, so a path lies
 * in the tree exactly when its real path starts with the root's.
 */
async function leftOutTest(root: string, paths: LeftOutPath[] | undefined): Promise<((rel: string) => boolean) | undefined> {
  if (!paths?.length) return undefined;
  let real: string;
  try {
    real = await realpath(root);
  } catch (err) {
    throw fsError(err, root, 'read');
  }
  const under = real.endsWith('/') ? real : `${real}/`;
  const names = new Set<string>();
  const starts: string[] = [];
  for (const p of paths) {
    if (!p.path.startsWith(under)) continue;
    const rel = p.path.slice(under.length);
    names.add(rel);
    if (p.siblingPrefix) starts.push(rel.slice(0, rel.lastIndexOf('/') + 1) + p.siblingPrefix);
  }
  if (names.size === 0) return undefined;
  return (rel) => names.has(rel) || starts.some((s) => rel.startsWith(s));
}

/** Linux `major()`/`minor()` of a device number. */
export function deviceNumbers(rdev: bigint): { devmajor: number; devminor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { devmajor: Number(major), devminor: Number(minor) };
}

function typeOf(st: BigIntStats): TarEntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'character-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return undefined;
}

/** Checks that `root` is a readable directory; throws INPUT_UNREADABLE naming it. */
export async function checkTreeRoot(root: string): Promise<void> {
  let st;
  try {
    st = await stat(root);
  } catch (err) {
    throw fsError(err, root, 'read');
  }
  if (!st.isDirectory()) throw new OciError('INVALID_ARGUMENT', `${root} is not a directory`);
}

/**
 * Entries the walk goes ahead by while the tree's extended attributes are
 * still being read: about as long as getfattr takes on a 1 GiB tree (0.4 s),
 * a few MiB of entries.
 */
const WALK_AHEAD = 16384;

/** Extended attributes of a tree's paths, by nameKey (tar/reader.ts) of the path relative to the root. */
export type TreeXattrs = Map<string, Map<string, Buffer>>;

/** An entry as walked: its relative name, and its bytes when that is not UTF-8 (what {@link xattrKey} files it under). */
export interface WalkedEntry extends TreeEntry {
  rel: string;
  raw?: Buffer;
}

/** The key of an entry's extended attributes in {@link TreeXattrs}. */
export const xattrKey = (w: { rel: string; raw?: Buffer }): string => nameKey(w.raw ?? w.rel);

/** The extended attributes an entry of `type` has under `key`, in name order; a hard link has none of its own. */
export function xattrsOf(xattrs: TreeXattrs, type: TarEntryType, key: string): Map<string, Buffer> | undefined {
  if (type === 'link' || xattrs.size === 0) return undefined;
  const attrs = xattrs.get(key);
  return attrs && attrs.size > 0 ? new Map([...attrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : undefined;
}

/** Yielded by the walk every 1024 steps (names looked at, directories left), where an asynchronous reader gives the event loop a turn. */
const PAUSE = Symbol('pause');

/** Checks the root, starts reading its extended attributes and returns the walk, ready to go. */
async function startWalk(
  root: string,
  options: TreeOptions,
  warnings: string[],
): Promise<{ walk: Generator<WalkedEntry | typeof PAUSE>; xattrs: Promise<TreeXattrs> }> {
  await checkTreeRoot(root);
  // getfattr reads every extended attribute of the tree in a process of its own, on another core,
  // while the walk goes on. Its failure is thrown where the attributes are first awaited.
  const xattrs = readTreeXattrs(root);
  xattrs.catch(() => {});
  const leftOut = await leftOutTest(root, options.leaveOut);
  return { walk: walkEntries(root, leftOut, options, warnings), xattrs };
}

/** Yields the normalized entries of the tree at `root`; `warnings` receives a line per skipped socket. */
export async function* walkTree(root: string, options: TreeOptions = {}, warnings: string[] = []): AsyncGenerator<TreeEntry> {
  const { walk, xattrs: xattrsRead } = await startWalk(root, options, warnings);
  // The walk goes ahead without the extended attributes (up to WALK_AHEAD entries, until they
  // are known); they are added as entries are yielded.
  let xattrs: TreeXattrs | undefined;
  xattrsRead.then((x) => (xattrs = x)).catch(() => {});
  const waiting: WalkedEntry[] = [];
  const withXattrs = (w: WalkedEntry): TreeEntry => {
    const attrs = xattrsOf(xattrs!, w.entry.type, xattrKey(w));
    if (attrs) w.entry.xattrs = attrs;
    return w;
  };
  for (const w of walk) {
    // Every call of the walk is synchronous: without a turn of the event loop now and then, a
    // walk nothing else awaits would hold off Ctrl-C, timers and progress until its end.
    if (w === PAUSE) await setImmediate();
    else if (xattrs === undefined && waiting.length < WALK_AHEAD) waiting.push(w);
    else {
      xattrs ??= await xattrsRead;
      for (const v of waiting.splice(0)) yield withXattrs(v);
      yield withXattrs(w);
    }
  }
  xattrs ??= await xattrsRead;
  for (const v of waiting.splice(0)) yield withXattrs(v);
}

/**
 * The walk of {@link walkTree} with the extended attributes apart, for a
 * caller that keeps every entry anyway (layering's scan): it takes the
 * entries as they are walked, without waiting for getfattr, and adds the
 * attributes ({@link xattrsOf}) once they are read.
 */
export async function walkTreeApart(
  root: string,
  options: TreeOptions,
  warnings: string[],
): Promise<{ entries: AsyncGenerator<WalkedEntry>; xattrs: Promise<TreeXattrs> }> {
  const { walk, xattrs } = await startWalk(root, options, warnings);
  async function* paced(): AsyncGenerator<WalkedEntry> {
    for (const w of walk) {
      if (w === PAUSE) await setImmediate();
      else yield w;
    }
  }
  return { entries: paced(), xattrs };
}

/** The walk itself: entries without their extended attributes, and a {@link PAUSE} every 1024 steps. */
function* walkEntries(
  root: string,
  leftOut: ((rel: string) => boolean) | undefined,
  options: TreeOptions,
  warnings: string[],
): Generator<WalkedEntry | typeof PAUSE> {
  const firstPathOf = new Map<string, { name: string; raw?: Buffer }>();
  const epoch = options.sourceDateEpoch;

  /** A directory being walked: its sorted names and the next to look at. `rawPrefix` is set below a name that is not UTF-8; `dir` is then bytes too. */
  interface Level {
    dir: string | Buffer;
    prefix: string;
    rawPrefix?: Buffer;
    names: Buffer[];
    next: number;
  }
  // Directories and links are read synchronously too, for the reason entries are lstat'ed so (below).
  const list = (dir: string | Buffer, prefix: string, rawPrefix?: Buffer): Level => {
    let names: Buffer[];
    try {
      names = readdirSync(dir, { encoding: 'buffer' });
    } catch (err) {
      throw fsError(err, shownName(dir), 'read');
    }
    names.sort(Buffer.compare);
    return { dir, prefix, rawPrefix, names, next: 0 };
  };

  // One loop over a stack of directories rather than a generator per directory: an entry
  // passed up through one `yield*` per level above it cost a promise and a result at each,
  // most of what a walk allocated.
  const stack = [list(root, '')];
  let walked = 0;
  while (stack.length > 0) {
    if (++walked % 1024 === 0) yield PAUSE;
    const level = stack[stack.length - 1]!;
    if (level.next === level.names.length) {
      stack.pop();
      continue;
    }
    const bytes = level.names[level.next++]!;
    const name = bytes.toString('utf8');
    const rel = level.prefix + name;
    // The destination inside the tree: packing it would pack its temporary files, a new layer each time.
    if (isExcluded(rel, options.exclude) || leftOut?.(rel)) continue;
    const raw = level.rawPrefix || !isUtf8(bytes) ? Buffer.concat([level.rawPrefix ?? Buffer.from(level.prefix), bytes]) : undefined;
    // Below the root, a directory's path is already normal (joinHost made it), and a name has no `/`.
    const path = stack.length > 1 && typeof level.dir === 'string' && !raw ? `${level.dir}/${name}` : joinHost(level.dir, raw ? bytes : name);
    // lstat synchronously, as the content is read (tar/frames.ts): on the main thread a call costs
    // microseconds, far less than a round trip through the thread pool per entry.
    let st: BigIntStats;
    try {
      st = lstatSync(path, { bigint: true });
    } catch (err) {
      throw fsError(err, shownName(path), 'read');
    }
    const out = entryOf(path, rel, raw, st);
    if (!out) continue;
    yield out;
    if (out.entry.type === 'directory') stack.push(list(path, `${rel}/`, raw && Buffer.concat([raw, Buffer.from('/')])));
  }

  /** The entry of one path; undefined for a socket (with a warning). */
  function entryOf(path: string | Buffer, rel: string, raw: Buffer | undefined, st: BigIntStats): WalkedEntry | undefined {
    const type = typeOf(st);
    if (!type) {
      warnings.push(`${shownName(path)}: skipped, tar cannot hold a socket`);
      return undefined;
    }
    // One object an entry, filled in place: a walk makes one for every file of the tree.
    const entry: TarEntry = {
      name: type === 'directory' ? `${rel}/` : rel,
      type,
      mode: Number(st.mode) & 0o7777,
      uid: options.owner?.uid ?? Number(st.uid),
      gid: options.owner?.gid ?? Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      mtime: normalizeMtime(Number(st.mtimeMs / 1000n), epoch),
    };
    if (raw) entry.rawName = type === 'directory' ? Buffer.concat([raw, Buffer.from('/')]) : raw;
    if (type !== 'directory' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = firstPathOf.get(key);
      if (first !== undefined) {
        const link: TarEntry = { ...entry, type: 'link', size: 0, linkname: first.name, ...(first.raw && { rawLinkname: first.raw }), xattrs: undefined };
        return { entry: link, rel, raw };
      }
      firstPathOf.set(key, { name: rel, raw });
    }
    if (type === 'file') return { entry, source: path, rel, raw };
    if (type === 'symlink') {
      let target: Buffer;
      try {
        target = readlinkSync(path, { encoding: 'buffer' });
      } catch (err) {
        throw fsError(err, shownName(path), 'read');
      }
      entry.linkname = target.toString('utf8');
      if (!isUtf8(target)) entry.rawLinkname = target;
    }
    if (type === 'character-device' || type === 'block-device') Object.assign(entry, deviceNumbers(st.rdev));
    return { entry, rel, raw };
  }
}
