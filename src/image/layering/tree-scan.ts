/**
 * The one walk of a tree that layering makes before any layer is written:
 * every entry's metadata (as walkTree normalizes it) in walk order, which
 * is the order every layer writes them in, and the SHA-256 of each regular
 * file's content, read once here with synchronous reads into one reused
 * buffer. Memory: the entries and 32 bytes per file, never a file's
 * content; the layers read the files again (from the page cache, mostly).
 */
import { createHash } from 'node:crypto';
import { changed, closeSyncQuietly, openSyncForRead, readSyncAt } from '../file-read.js';
import type { TarEntry } from '../tar/header.js';
import { walkTree, type TreeOptions } from '../tree.js';

/** An entry of the scanned tree. */
export interface ScannedEntry {
  entry: TarEntry;
  /** The file to read content from. */
  source?: string | Buffer;
  /** SHA-256 of a regular file's content. */
  sha256?: Buffer;
}

/** A tree's entries in walk order, and each path (no trailing `/`) → its index. */
export interface ScannedTree {
  root: string;
  entries: ScannedEntry[];
  index: Map<string, number>;
}

const READ = 1 << 20;

/** SHA-256 of a file of known size; fails when the file is not that size any more. */
function hashFile(source: string | Buffer, size: number, buf: Buffer): Buffer {
  const h = createHash('sha256');
  const path = String(source);
  const fd = openSyncForRead(source);
  try {
    for (let pos = 0; pos < size;) {
      const n = readSyncAt(fd, path, buf, 0, Math.min(READ, size - pos), pos);
      if (n === 0) throw changed(path);
      h.update(buf.subarray(0, n));
      pos += n;
    }
    if (readSyncAt(fd, path, buf, 0, 1, size) !== 0) throw changed(path);
  } finally {
    closeSyncQuietly(fd);
  }
  return h.digest();
}

/** The path of an entry as the index keys it: its name without the trailing `/` of a directory. */
export function entryPath(e: TarEntry): string {
  return e.name.endsWith('/') ? e.name.slice(0, -1) : e.name;
}

/** Walks `root` once, hashing file content; `warnings` as walkTree. */
export async function scanTree(root: string, options: TreeOptions, warnings: string[], signal?: AbortSignal): Promise<ScannedTree> {
  const entries: ScannedEntry[] = [];
  const index = new Map<string, number>();
  const buf = Buffer.allocUnsafe(READ);
  for await (const { entry, source } of walkTree(root, options, warnings)) {
    signal?.throwIfAborted();
    const scanned: ScannedEntry = { entry, source };
    if (entry.type === 'file' && source !== undefined) scanned.sha256 = hashFile(source, entry.size, buf);
    index.set(entryPath(entry), entries.length);
    entries.push(scanned);
  }
  return { root, entries, index };
}
