/**
 * Which component each path of a tree belongs to, from what the tree
 * itself records, strongest first:
 *
 * 1. the `user.component` extended attribute of the path, or of the
 *    nearest directory above it that has one (as rpm-ostree and chunkah
 *    read it): the component is named by the value as it is;
 * 2. the package databases (dpkg, apk, pacman, rpm: `deb:NAME`, `apk:NAME`,
 *    `pacman:NAME`, `rpm:NAME`); a file two packages list goes to the first
 *    by name; directories are shared (rule 5) even when one package alone
 *    lists them: which packages list a directory changes as packages come
 *    and go, and its owner with it, which would change layers that did not;
 * 3. Nix store paths (`nix:HASH-NAME`), with everything below them;
 * 4. a regular file of `largeFile` bytes or more that nothing above claims
 *    is a component of its own (`file:PATH`);
 * 5. the rest is grouped by the first two levels of its directory
 *    (`dir:usr/lib`, `dir:etc`, `dir:.` for the top level): stable, and
 *    marked volatile, as what no package owns (generated configuration,
 *    databases, the package database itself) changes with every update.
 */
import type { PackageDb } from './db-path.js';
import type { ScannedTree } from './tree-scan.js';

/** Default size from which an unclaimed file is a component of its own. */
export const LARGE_FILE = 16 << 20;
/** The attribute naming a path's component. */
export const COMPONENT_XATTR = 'user.component';

export type ComponentKind = 'xattr' | 'package' | 'nix' | 'file' | 'directory';

/** A component: files that change together. */
export interface Component {
  name: string;
  kind: ComponentKind;
  /** Expected to change with most updates (rule 5). */
  volatile: boolean;
}

/** Every path's component. */
export interface Assignment {
  components: Component[];
  /** Entry index → component index. */
  of: Int32Array;
  /** Packages found, per database (for the report). */
  databases: Array<{ kind: string; file: string; packages: number }>;
}

/** `dir:` group of a path: the first two levels of its directory (of itself, for a directory). */
export function directoryGroup(path: string, isDir: boolean): string {
  const parts = path.split('/');
  if (!isDir) parts.pop();
  return parts.length === 0 ? '.' : parts.slice(0, 2).join('/');
}

/** Assigns every entry of `tree` to a component. */
export function assignComponents(tree: ScannedTree, dbs: PackageDb[], largeFile = LARGE_FILE): Assignment {
  const components: Component[] = [];
  const ids = new Map<string, number>();
  const comp = (name: string, kind: ComponentKind): number => {
    let id = ids.get(name);
    if (id === undefined) {
      ids.set(name, (id = components.length));
      components.push({ name, kind, volatile: kind === 'directory' });
    }
    return id;
  };
  const n = tree.count;
  const owner = new Int32Array(n).fill(-1);
  const subtree = new Map<number, number>();
  for (const db of dbs) {
    const packages = [...db.packages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const p of packages) {
      const id = comp(db.kind === 'nix' ? `nix:${p.name}` : `${db.kind}:${p.name}`, db.kind === 'nix' ? 'nix' : 'package');
      for (const i of p.entries) {
        if (db.kind === 'nix') subtree.set(i, id);
        if (owner[i] === -1) owner[i] = id;
      }
    }
  }

  const of = new Int32Array(n);
  // Directories above the current entry, with what they pass down (an xattr's or a store path's component).
  const stack: Array<{ prefix: string; xattr?: number; nix?: number }> = [];
  for (let i = 0; i < n; i++) {
    const path = tree.path(i);
    while (stack.length > 0 && !path.startsWith(stack[stack.length - 1]!.prefix)) stack.pop();
    const above = stack[stack.length - 1];
    const own = tree.xattr(i, COMPONENT_XATTR);
    const isDir = tree.isDirectory(i);
    let id: number;
    let xattr = above?.xattr;
    const nix = subtree.get(i) ?? above?.nix;
    if (own && own.length > 0) id = xattr = comp(own.toString('utf8'), 'xattr');
    else if (xattr !== undefined) id = xattr;
    else if (owner[i]! >= 0 && !isDir) id = owner[i]!;
    else if (nix !== undefined) id = nix;
    else if (tree.type(i) === 'file' && tree.size(i) >= largeFile) id = comp(`file:${path}`, 'file');
    else id = comp(`dir:${directoryGroup(path, isDir)}`, 'directory');
    of[i] = id;
    if (isDir && (xattr !== undefined || nix !== undefined)) stack.push({ prefix: `${path}/`, xattr, nix });
  }
  return { components, of, databases: dbs.map((d) => ({ kind: d.kind, file: d.file, packages: d.packages.length })) };
}
