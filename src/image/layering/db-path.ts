/**
 * Paths that a package database names, checked and found in the scanned
 * tree. A database names paths as the package installed them (`/bin/ls`),
 * which on a merged-/usr tree lies behind a symlink (`bin -> usr/bin`):
 * such a path is resolved inside the tree, symlinks followed as they would
 * be with the tree as the root directory (`..` stops at the root, an
 * absolute target starts from it). A path that leaves the tree by its own
 * `..` components is an error in the database; a path the tree does not
 * hold (a removed or diverted file) is not.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fsError, OciError } from '../../errors.js';
import { closeSyncQuietly, openSyncForRead } from '../file-read.js';
import type { ScannedTree } from './tree-scan.js';

/** An empty, `.` or `..` component, or a trailing `/`. */
const notNormal = /\/\/|(^|\/)\.\.?(\/|$)|\/$/;

/**
 * The path a database line names, relative to the root and normalized
 * (no `.`, no empty components, no trailing `/`); '' for the root itself.
 * Throws INVALID_FORMAT naming the file and line for a path with `..`, a
 * NUL, or (when `absolute`) one that does not start with `/`.
 */
export function checkedDbPath(text: string, file: string, line: number, absolute: boolean): string {
  if (text.includes('\0') || (absolute && !text.startsWith('/'))) {
    throw new OciError('INVALID_FORMAT', `${file}: line ${line} names "${text}", which is not an absolute path in the tree`);
  }
  // Most lines are normal already (`/usr/bin/ls`): no parts to split and join again.
  if (text !== '' && !notNormal.test(text)) return text.startsWith('/') ? text.slice(1) : text;
  const parts = text.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new OciError('INVALID_FORMAT', `${file}: line ${line} names "${text}", a path outside the tree`);
  return parts.join('/');
}

const MAX_LINKS = 40;

/** The index of the entry a normalized path names, following symlinks inside the tree; undefined when the tree does not hold it. */
export function findInTree(tree: ScannedTree, path: string): number | undefined {
  const direct = tree.find(path);
  if (direct !== undefined || path === '') return direct;
  let todo = path.split('/');
  // The part resolved so far, as a path: each step looks up one more component.
  let done = '';
  let links = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done = done.slice(0, Math.max(0, done.lastIndexOf('/')));
      continue;
    }
    const candidate = done === '' ? part : `${done}/${part}`;
    const i = tree.find(candidate);
    if (i === undefined) return undefined;
    // The last component is the entry itself (a symlink a package ships is not followed).
    if (tree.type(i) === 'symlink' && todo.length > 0) {
      if (++links > MAX_LINKS) return undefined;
      const target = tree.linkname(i) ?? '';
      todo = [...target.split('/'), ...todo];
      if (target.startsWith('/')) done = '';
      continue;
    }
    done = candidate;
  }
  return tree.find(done);
}

/** One installed package and the entries of the tree it owns. */
export interface PackageRecord {
  name: string;
  version?: string;
  /** Indices of the entries at the paths it lists (found by {@link findInTree}; paths the tree does not hold are left out). */
  entries: Uint32Array;
}

/**
 * The entries of the tree at `paths` (normalized, relative): a package's
 * paths are looked up as soon as they are read, so that only 4 bytes a path
 * outlive the reading of its database, not the path strings.
 */
export function entriesAt(tree: ScannedTree, paths: Iterable<string>): Uint32Array {
  const out: number[] = [];
  for (const p of paths) {
    const i = findInTree(tree, p);
    if (i !== undefined) out.push(i);
  }
  return Uint32Array.from(out);
}

/** What one package database says. */
export interface PackageDb {
  /** dpkg, apk, pacman or rpm: the component name prefix. */
  kind: string;
  /** The database file, relative to the root. */
  file: string;
  packages: PackageRecord[];
}

/** The paths directly in directory `dir` of the tree, in walk order; none when it has no such directory. */
export function pathsIn(tree: ScannedTree, dir: string): string[] {
  const d = tree.find(dir);
  return d === undefined || !tree.isDirectory(d) ? [] : tree.children(d).map((i) => `${dir}/${tree.base(i)}`);
}

/** Whether the tree holds a regular file at `rel` (reached through real directories: the walk follows no symlink). */
export function treeHasFile(tree: ScannedTree, rel: string): boolean {
  const i = tree.find(rel);
  return i !== undefined && tree.type(i) === 'file';
}

/**
 * Reads a database file of the tree as text, synchronously: dpkg and pacman
 * keep one small file a package, hundreds to thousands of them read one
 * after the other while nothing else runs, and each asynchronous read was
 * four trips through the thread pool (on a 2-core machine, reading dpkg's
 * took a fifth of a second longer so). Opened non-blocking, as the layers'
 * files are: one swapped for a FIFO since the walk fails instead of
 * stalling the build.
 */
export function readDbFile(tree: ScannedTree, rel: string): string {
  // Only what the walk found as a regular file: a symlink could lead out of the tree, a FIFO stall.
  if (!treeHasFile(tree, rel)) throw new OciError('INVALID_FORMAT', `${rel}: the package database names it, but it is not a regular file in the tree`);
  const path = join(tree.root, rel);
  const fd = openSyncForRead(path);
  try {
    return readFileSync(fd, 'utf8');
  } catch (err) {
    throw fsError(err, path, 'read');
  } finally {
    closeSyncQuietly(fd);
  }
}
