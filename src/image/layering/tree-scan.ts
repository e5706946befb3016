/**
 * The one walk of a tree that layering makes before any layer is written:
 * every entry's metadata (as walkTree normalizes it) in walk order, which
 * is the order every layer writes them in. No file's content is read here;
 * each layer reads its files as it is written (and, with --previous, as a
 * previous layer is checked, keep.ts). Memory: about 45 bytes an entry in
 * typed arrays (ScannedTree), never a file's content; no object per entry.
 */
import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import { OciError } from '../../errors.js';
import type { EntryWithContent } from '../tar/frames.js';
import type { TarEntry, TarEntryType } from '../tar/header.js';
import { type TreeOptions, type TreeXattrs, walkTreeApart, xattrKey, xattrsOf } from '../tree.js';

const TYPES: TarEntryType[] = ['file', 'link', 'symlink', 'character-device', 'block-device', 'directory', 'fifo'];
const TYPE_CODE = new Map(TYPES.map((t, i) => [t, i]));
const DIRECTORY = TYPE_CODE.get('directory')!;

/** The fields of a tar entry that few entries have. */
type RareFields = Pick<TarEntry, 'linkname' | 'devmajor' | 'devminor' | 'xattrs' | 'rawName' | 'rawLinkname'>;
const rareKeys = ['linkname', 'devmajor', 'devminor', 'xattrs', 'rawName', 'rawLinkname'] as const satisfies readonly (keyof RareFields)[];

/** What few entries have: kept aside, by entry index. */
interface Rare extends RareFields {
  /** The file to read content from, when it is not `root/NAME` (a name that is not UTF-8). */
  source?: string | Buffer;
}

/** The rare fields `from` has set, to keep aside or to put back on an entry. */
function rareOf(from: RareFields): RareFields {
  const out: Record<string, unknown> = {};
  for (const k of rareKeys) if (from[k] !== undefined) out[k] = from[k];
  return out as RareFields;
}

/** FNV-1a of a string's UTF-16 code units. */
function hashPath(s: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
  return h >>> 0;
}

const utf8 = new TextEncoder();

/**
 * A tree's entries in walk order, column by column: a few typed arrays of
 * metadata (type, mode, owner, size, mtime, parent directory), each entry's
 * last name component as UTF-8 in one buffer, an open-addressing table from
 * path to index, and a map of what few entries have (link targets, device
 * numbers, xattrs, names that are not UTF-8). About 45 bytes an entry, most
 * of them outside the JavaScript heap; a TarEntry is made only when asked
 * for ({@link entry}), to be written and dropped.
 */
export class ScannedTree {
  /** `root/` as the walk joins paths: the source of most files is this and their name. */
  readonly prefix: string;
  /** Directory index of each entry (-1 at the top). */
  readonly parent: Int32Array;
  private readonly types: Uint8Array;
  private readonly modes: Uint16Array;
  private readonly uids: Uint32Array;
  private readonly gids: Uint32Array;
  private readonly sizes: Float64Array;
  private readonly mtimes: Float64Array;
  /** Entry i's name component is `names[nameEnd[i-1] .. nameEnd[i]]`. */
  private readonly nameEnd: Uint32Array;
  private readonly names: Buffer;
  private readonly rare: Map<number, Rare>;
  /** {@link hashPath} of each entry's path. */
  private readonly hashes: Uint32Array;
  /** Path → index + 1 (0: empty), open addressing by {@link hashPath}. */
  private readonly table: Int32Array;
  /** Paths of directories already asked for. */
  private readonly dirPaths = new Map<number, string>();

  constructor(
    readonly root: string,
    b: TreeBuilder,
  ) {
    const n = b.count;
    this.prefix = join(root, '/');
    this.parent = b.parent.slice(0, n);
    this.types = b.types.slice(0, n);
    this.modes = b.modes.slice(0, n);
    this.uids = b.uids.slice(0, n);
    this.gids = b.gids.slice(0, n);
    this.sizes = b.sizes.slice(0, n);
    this.mtimes = b.mtimes.slice(0, n);
    this.nameEnd = b.nameEnd.slice(0, n);
    this.names = Buffer.from(b.names.subarray(0, n === 0 ? 0 : b.nameEnd[n - 1]!));
    this.rare = b.rare;
    this.hashes = b.hashes.slice(0, n);
    let size = 16;
    while (size < 2 * n) size *= 2;
    this.table = new Int32Array(size);
    for (let i = 0; i < n; i++) {
      // A later entry of the same path (two names that are not UTF-8, shown alike) replaces the earlier.
      const slot = this.slot(this.hashes[i]!, (j) => this.hashes[j] === this.hashes[i] && this.path(j) === this.path(i));
      this.table[slot] = i + 1;
    }
  }

  /** Number of entries. */
  get count(): number {
    return this.types.length;
  }

  /** The slot of the table holding an entry for which `same` holds, or the empty slot where it would go. */
  private slot(hash: number, same: (j: number) => boolean): number {
    const mask = this.table.length - 1;
    for (let s = hash & mask; ; s = (s + 1) & mask) {
      const j = this.table[s]! - 1;
      if (j < 0 || same(j)) return s;
    }
  }

  /** Index of the entry at `path` (no trailing `/`), as the walk named it; undefined when the tree has none. */
  find(path: string): number | undefined {
    const hash = hashPath(path);
    const j = this.table[this.slot(hash, (j) => this.hashes[j] === hash && this.path(j) === path)]! - 1;
    return j < 0 ? undefined : j;
  }

  type(i: number): TarEntryType {
    return TYPES[this.types[i]!]!;
  }

  isDirectory(i: number): boolean {
    return this.types[i] === DIRECTORY;
  }

  /** Content bytes (files only). */
  size(i: number): number {
    return this.sizes[i]!;
  }

  linkname(i: number): string | undefined {
    return this.rare.get(i)?.linkname;
  }

  xattr(i: number, name: string): Buffer | undefined {
    return this.rare.get(i)?.xattrs?.get(name);
  }

  /** The last component of the entry's path. */
  base(i: number): string {
    return this.names.toString('utf8', i === 0 ? 0 : this.nameEnd[i - 1]!, this.nameEnd[i]!);
  }

  /** The entry's path, without the trailing `/` of a directory. */
  path(i: number): string {
    const p = this.parent[i]!;
    return p < 0 ? this.base(i) : `${this.dirPath(p)}/${this.base(i)}`;
  }

  private dirPath(d: number): string {
    let s = this.dirPaths.get(d);
    if (s === undefined) this.dirPaths.set(d, (s = this.path(d)));
    return s;
  }

  /** The entries directly in directory `d` (-1: the top), in walk order. */
  children(d: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.parent.length; i++) if (this.parent[i] === d) out.push(i);
    return out;
  }

  /** Entry `i` as the walk gave it (made anew each time). */
  entry(i: number): TarEntry {
    const type = this.type(i);
    const r = this.rare.get(i);
    const e: TarEntry = {
      name: type === 'directory' ? `${this.path(i)}/` : this.path(i),
      type,
      mode: this.modes[i]!,
      uid: this.uids[i]!,
      gid: this.gids[i]!,
      size: this.sizes[i]!,
      mtime: this.mtimes[i]!,
    };
    if (r) Object.assign(e, rareOf(r));
    return e;
  }

  /** Sets entry `i`'s extended attributes (the scan adds them after the walk). */
  setXattrs(i: number, xattrs: Map<string, Buffer>): void {
    const r = this.rare.get(i);
    if (r) r.xattrs = xattrs;
    else this.rare.set(i, { xattrs });
  }

  /** The file an entry's content is read from (`entry`: the entry as {@link entry} made it, whose name is its path). */
  source(i: number, entry?: TarEntry): string | Buffer | undefined {
    const r = this.rare.get(i)?.source;
    return r ?? (this.types[i] === 0 ? `${this.prefix}${entry?.name ?? this.path(i)}` : undefined);
  }
}

/** The columns of a tree being walked, grown by doubling. */
class TreeBuilder {
  count = 0;
  parent = new Int32Array(1024);
  types = new Uint8Array(1024);
  modes = new Uint16Array(1024);
  uids = new Uint32Array(1024);
  gids = new Uint32Array(1024);
  sizes = new Float64Array(1024);
  mtimes = new Float64Array(1024);
  nameEnd = new Uint32Array(1024);
  hashes = new Uint32Array(1024);
  names = Buffer.alloc(16 << 10);
  rare = new Map<number, Rare>();
  /** Directories above the entry being added: path and index. */
  private readonly stack: Array<{ path: string; index: number }> = [];

  private grow(): void {
    const cap = this.types.length * 2;
    const more = <T extends { length: number; set(a: ArrayLike<number>): void }>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a as unknown as ArrayLike<number>);
      return b;
    };
    this.parent = more(this.parent, (n) => new Int32Array(n));
    this.types = more(this.types, (n) => new Uint8Array(n));
    this.modes = more(this.modes, (n) => new Uint16Array(n));
    this.uids = more(this.uids, (n) => new Uint32Array(n));
    this.gids = more(this.gids, (n) => new Uint32Array(n));
    this.sizes = more(this.sizes, (n) => new Float64Array(n));
    this.mtimes = more(this.mtimes, (n) => new Float64Array(n));
    this.nameEnd = more(this.nameEnd, (n) => new Uint32Array(n));
    this.hashes = more(this.hashes, (n) => new Uint32Array(n));
  }

  add(e: TarEntry, source: string | Buffer | undefined): void {
    if (this.count === this.types.length) this.grow();
    const i = this.count++;
    const path = entryPath(e);
    const slash = path.lastIndexOf('/');
    const dir = slash < 0 ? '' : path.slice(0, slash);
    while (this.stack.length > 0 && this.stack[this.stack.length - 1]!.path !== dir) this.stack.pop();
    if (slash >= 0 && this.stack.length === 0) throw new OciError('INTERNAL', `${e.name}: walked before its directory`);
    this.parent[i] = slash < 0 ? -1 : this.stack[this.stack.length - 1]!.index;
    this.types[i] = TYPE_CODE.get(e.type)!;
    this.modes[i] = e.mode;
    this.uids[i] = e.uid;
    this.gids[i] = e.gid;
    this.sizes[i] = e.size;
    this.mtimes[i] = e.mtime;
    this.hashes[i] = hashPath(path);
    const base = path.slice(slash + 1);
    const start = i === 0 ? 0 : this.nameEnd[i - 1]!;
    const need = start + 3 * base.length;
    if (need > this.names.length) {
      const names = Buffer.alloc(Math.max(2 * this.names.length, need));
      this.names.copy(names);
      this.names = names;
    }
    this.nameEnd[i] = start + utf8.encodeInto(base, this.names.subarray(start)).written;
    const r: Rare = rareOf(e);
    if (source !== undefined) r.source = source;
    if (Object.keys(r).length > 0) this.rare.set(i, r);
    if (e.type === 'directory') this.stack.push({ path, index: i });
  }
}

/** Puts each entry's extended attributes (found by `keyed`, else by path) on it. */
function addXattrs(tree: ScannedTree, xattrs: TreeXattrs, keyed: Map<string, number>): void {
  for (const key of xattrs.keys()) {
    const bytes = Buffer.from(key, 'latin1');
    const i = keyed.get(key) ?? (isUtf8(bytes) ? tree.find(bytes.toString('utf8')) : undefined);
    if (i === undefined) continue;
    const attrs = xattrsOf(xattrs, tree.type(i), key);
    if (attrs) tree.setXattrs(i, attrs);
  }
}

/** The path of an entry as the index keys it: its name without the trailing `/` of a directory. */
export function entryPath(e: TarEntry): string {
  return e.name.endsWith('/') ? e.name.slice(0, -1) : e.name;
}

/**
 * Walks `root` once (`warnings` as walkTree). The extended attributes are
 * added after the walk, which so never waits for getfattr (on a 1 GiB tree
 * it otherwise stood idle for a sixth of the walk, or would hold 300 bytes
 * an entry until they came).
 */
export async function scanTree(root: string, options: TreeOptions, warnings: string[], signal?: AbortSignal): Promise<ScannedTree> {
  const b = new TreeBuilder();
  const prefix = join(root, '/');
  const { entries, xattrs } = await walkTreeApart(root, options, warnings);
  // Entries whose path may name another entry too, by the key of their attributes: those whose
  // name (or a directory's above them) is not UTF-8, shown with U+FFFD, and those with a real
  // U+FFFD in their path, which such a one can share. The others are found by path.
  const keyed = new Map<string, number>();
  for await (const w of entries) {
    signal?.throwIfAborted();
    const { entry, source } = w;
    if (entry.type === 'file' && source === undefined) throw new OciError('INTERNAL', `${entry.name}: a file without a source`);
    const usual = typeof source === 'string' && source.length === prefix.length + entry.name.length && source.startsWith(prefix) && source.endsWith(entry.name);
    if (w.raw || w.rel.includes('\ufffd')) keyed.set(xattrKey(w), b.count);
    b.add(entry, usual ? undefined : source);
  }
  const tree = new ScannedTree(root, b);
  addXattrs(tree, await xattrs, keyed);
  return tree;
}

/** The entries of one layer to write, with their files to read. Each writing of a layer iterates afresh. */
export async function* layerEntries(tree: ScannedTree, entries: Uint32Array): AsyncGenerator<EntryWithContent> {
  for (const i of entries) {
    const entry = tree.entry(i);
    yield { entry, source: tree.source(i, entry) };
  }
}
