/**
 * The one walk of a tree that layering makes before any layer is written:
 * every entry's metadata (as walkTree normalizes it) in walk order, which
 * is the order every layer writes them in, and room for the SHA-256 of
 * each regular file's content (32 bytes an entry, in one buffer).
 *
 * The content digests come from the layers' own tar streams as they are
 * written (ContentTap), when nothing needs them sooner. Only a build with
 * --previous hashes here, reading every file once before any layer is
 * written: whether a previous layer is kept must be known before the
 * layers are packed and written (a kept layer's components are not packed
 * again, and its blob is copied rather than written), and learning it by
 * writing a layer would cost the compression the keeping saves. Those
 * reads are synchronous into one reused buffer; the layers then read the
 * files again, from the page cache mostly. Memory: the entries and 32
 * bytes each, never a file's content.
 */
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { OciError } from '../../errors.js';
import { changed, closeSyncQuietly, openSyncForRead, readSyncAt } from '../file-read.js';
import { encodeTarHeader, paddingFor, type TarEntry } from '../tar/header.js';
import { type TreeOptions, walkTree } from '../tree.js';

/** An entry of the scanned tree. */
export interface ScannedEntry {
  entry: TarEntry;
  /**
   * The file to read content from, when it is not `root/NAME` (a name that
   * is not UTF-8); see {@link sourceOf}. Leaving out the usual one saves a
   * path string per file, a fifth of what the tree holds.
   */
  source?: string | Buffer;
}

/** A tree's entries in walk order, and each path (no trailing `/`) → its index. */
export interface ScannedTree {
  root: string;
  entries: ScannedEntry[];
  index: Map<string, number>;
  /** `root/` as the walk joins paths: the source of most files is this and their name. */
  prefix: string;
  /** SHA-256 of each regular file's content at 32 × its index, once hashed (here or by a ContentTap). */
  digests: Buffer;
}

/** Whether an entry has content to hash (a regular file read from the tree). */
export const hasContent = (s: ScannedEntry): boolean => s.entry.type === 'file';

/** The file an entry's content is read from. */
export const sourceOf = (tree: ScannedTree, s: ScannedEntry): string | Buffer | undefined =>
  s.source ?? (s.entry.type === 'file' ? `${tree.prefix}${s.entry.name}` : undefined);

/** The content digest of entry `i` (a view into `tree.digests`). */
export const contentDigest = (tree: ScannedTree, i: number): Buffer => tree.digests.subarray(32 * i, 32 * i + 32);

const READ = 1 << 20;

/** SHA-256 of a file of known size, written to `out`; fails when the file is not that size any more. */
function hashFile(source: string | Buffer, size: number, buf: Buffer, out: Buffer): void {
  const h = createHash('sha256');
  const path = String(source);
  const fd = openSyncForRead(source);
  try {
    for (let pos = 0; pos < size; ) {
      const n = readSyncAt(fd, path, buf, 0, Math.min(READ, size - pos), pos);
      if (n === 0) throw changed(path);
      h.update(buf.subarray(0, n));
      pos += n;
    }
    if (readSyncAt(fd, path, buf, 0, 1, size) !== 0) throw changed(path);
  } finally {
    closeSyncQuietly(fd);
  }
  h.digest().copy(out);
}

/** The path of an entry as the index keys it: its name without the trailing `/` of a directory. */
export function entryPath(e: TarEntry): string {
  return e.name.endsWith('/') ? e.name.slice(0, -1) : e.name;
}

/** Walks `root` once; with `hash`, hashes every file's content too. `warnings` as walkTree. */
export async function scanTree(root: string, options: TreeOptions, warnings: string[], signal?: AbortSignal, hash = false): Promise<ScannedTree> {
  const entries: ScannedEntry[] = [];
  const index = new Map<string, number>();
  const prefix = join(root, '/');
  for await (const { entry, source } of walkTree(root, options, warnings)) {
    signal?.throwIfAborted();
    if (entry.type === 'file' && source === undefined) throw new OciError('INTERNAL', `${entry.name}: a file without a source`);
    index.set(entryPath(entry), entries.length);
    const usual = typeof source === 'string' && source.length === prefix.length + entry.name.length && source.startsWith(prefix) && source.endsWith(entry.name);
    entries.push(usual ? { entry } : { entry, source });
  }
  const tree: ScannedTree = { root, prefix, entries, index, digests: Buffer.alloc(32 * entries.length) };
  if (hash) {
    const buf = Buffer.allocUnsafe(READ);
    entries.forEach((s, i) => {
      if (i % 256 === 0) signal?.throwIfAborted();
      if (hasContent(s)) hashFile(sourceOf(tree, s)!, s.entry.size, buf, contentDigest(tree, i));
    });
  }
  return tree;
}

/**
 * Hashes the content of the files of one layer from its tar stream, into
 * `tree.digests`: given the layer's entries (in the order it writes them),
 * it knows where each file's content lies in the stream (after its header,
 * as encodeTarHeader writes it) and hashes those bytes as the chunks pass.
 * Each opening of the layer gets a fresh tap (the store may read a layer
 * twice); a digest is written only once its file's last byte has passed.
 */
export function contentTap(tree: ScannedTree, layerEntries: Uint32Array): () => (chunk: Buffer) => void {
  return () => {
    let k = 0; // next entry of the layer
    let pos = 0; // stream offset of the chunk being looked at
    let start = 0; // stream offset of the next entry's header
    let file = -1; // entry whose content is being hashed
    let end = 0; // stream offset where its content ends
    let h: Hash | undefined;
    /** Moves to the next entry with content, finishing the ones without. */
    const nextFile = (): void => {
      file = -1;
      while (k < layerEntries.length) {
        const i = layerEntries[k++]!;
        const s = tree.entries[i]!;
        const contentStart = start + encodeTarHeader(s.entry).length;
        start = contentStart + (s.entry.type === 'file' ? s.entry.size + paddingFor(s.entry.size) : 0);
        if (!hasContent(s)) continue;
        if (s.entry.size === 0) {
          createHash('sha256').digest().copy(contentDigest(tree, i));
          continue;
        }
        file = i;
        end = contentStart + s.entry.size;
        h = createHash('sha256');
        fileStart = contentStart;
        return;
      }
    };
    let fileStart = 0;
    nextFile();
    return (chunk: Buffer) => {
      const chunkEnd = pos + chunk.length;
      while (file >= 0 && fileStart < chunkEnd) {
        const from = Math.max(fileStart, pos);
        const to = Math.min(end, chunkEnd);
        if (to > from) h!.update(chunk.subarray(from - pos, to - pos));
        if (to < end) break;
        h!.digest().copy(contentDigest(tree, file));
        nextFile();
      }
      pos = chunkEnd;
    };
  };
}
