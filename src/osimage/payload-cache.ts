/**
 * Remembers which stored blob a payload file was encoded to, so that an
 * unchanged payload is neither compressed nor uploaded again.
 *
 * Safety: the file's identity (device, inode, size, mtime, ctime), or
 * failing that an entry of the same size, only *suggests* a cache entry.
 * Before a blob is reused, the payload is read and its chunk hashes
 * recomputed (reading and hashing, no compression); the blob is reused only
 * when they equal the recorded ones and the target store already holds the
 * blob. The config is built from the fresh hashes either way.
 *
 * Except for a file whose identity the cache may trust, as build systems
 * (make, ninja, git's index) trust it: same device, inode and size, and
 * the same modification and change times to the nanosecond. The change
 * time (ctime) cannot be set from user space: every write, truncate,
 * rename onto the path, chmod or utimes sets it to the current time, so a
 * file with the recorded ctime has not been written since it was recorded
 * (a new file at the same inode gets a new ctime too). The one gap is a
 * write in the same clock tick as the previous one, after the cache's stat
 * (the "racy clean" case of git): an entry is trusted only when its stat
 * was taken at least {@link racyMarginNs} after the file's ctime, so that
 * any later write has a later ctime. What trust skips is reading and
 * hashing the whole file; the recorded chunk hashes (kept beside the
 * entries, checked against the entry's content key) go into the config, the
 * first and last chunks are still hashed again, and the registry must still
 * hold the blob. A clock set back, or a filesystem that does not keep
 * ctime, defeats this: `--no-cache` then.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats, Stats } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

/** One remembered encoding of a payload file. */
export interface PayloadCacheEntry {
  /** File identity when it was encoded. */
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Encoder settings (compression, level, chunk and frame sizes, encoder version). */
  settings: string;
  /** SHA-256 over the chunk hash list: identifies the uncompressed content. */
  contentKey: string;
  /**
   * The first chunk's hash (absent in entries from before it was kept): a
   * file of the same size whose first chunk differs is ruled out without
   * hashing the rest of it.
   */
  firstChunk?: string;
  blobDigest: string;
  blobSize: number;
  mediaType: string;
  usedAt: number;
  /** Modification and change times in nanoseconds, and when (ns) they were read, as decimal strings (see {@link FileIdentity}). */
  mtimeNs?: string;
  ctimeNs?: string;
  statAtNs?: string;
}

/** A file's identity to the nanosecond, and when it was taken. */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  /** Wall-clock time (ns) read just before the stat. */
  statAtNs: string;
}

/**
 * How long before the cache's stat a file must have last changed for its
 * identity to be trusted: far more than any clock tick timestamps are taken
 * from (a few ms on Linux; 1 s on ext3 and HFS+; 2 s on FAT, which has
 * no ctime anyway).
 */
export const racyMarginNs = 2_000_000_000n;

/** The identity of the file at `path` now; undefined when it cannot be read. */
export async function fileIdentity(path: string): Promise<FileIdentity | undefined> {
  const statAtNs = BigInt(Date.now()) * 1_000_000n;
  try {
    const st: BigIntStats = await stat(path, { bigint: true });
    return {
      dev: Number(st.dev),
      ino: Number(st.ino),
      size: Number(st.size),
      mtimeNs: String(st.mtimeNs),
      ctimeNs: String(st.ctimeNs),
      statAtNs: String(statAtNs),
    };
  } catch {
    return undefined;
  }
}

const MAX_ENTRIES = 2000;

/** The directory oci-os keeps its cache in: $OCI_OS_CACHE_DIR, $XDG_CACHE_HOME/oci-os or ~/.cache/oci-os. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OCI_OS_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'oci-os');
}

/** Identifies a chunk hash list (and so the uncompressed content). */
export function contentKey(size: number, chunkHashSize: number, hashes: readonly string[]): string {
  return createHash('sha256')
    .update(`${size}/${chunkHashSize}/${hashes.join(',')}`)
    .digest('hex');
}

let zstdVersionRead: string | undefined;
/** The zstd binding's version, read when an encoding first needs it (not as every command that bundles this starts). */
function zstdVersion(): string {
  if (zstdVersionRead === undefined) {
    try {
      zstdVersionRead = (createRequire(import.meta.url)('@mongodb-js/zstd/package.json') as { version: string }).version;
    } catch {
      zstdVersionRead = 'unknown';
    }
  }
  return zstdVersionRead;
}

/** Settings string that must match for an encoding to be reused. */
export function encodingSettings(e: { compression: string; level: number; hashChunkSize: number; frameSize: number }): string {
  return e.compression === 'none' ? `none/${e.hashChunkSize}` : `zstd-${zstdVersion()}/${e.level}/${e.hashChunkSize}/${e.frameSize}`;
}

/** A small JSON file of entries, written atomically; losing it only costs time. */
export class PayloadCache {
  private entries?: PayloadCacheEntry[];
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly dir: string = defaultCacheDir()) {}

  private get file(): string {
    return join(this.dir, 'payloads.json');
  }

  private async load(): Promise<PayloadCacheEntry[]> {
    if (!this.entries) {
      try {
        const parsed = JSON.parse(await readFile(this.file, 'utf8')) as { entries?: PayloadCacheEntry[] };
        this.entries = Array.isArray(parsed.entries) ? parsed.entries : [];
      } catch {
        this.entries = [];
      }
    }
    return this.entries;
  }

  /** The entry whose file identity and settings match, if any. */
  async lookup(st: Stats, settings: string): Promise<PayloadCacheEntry | undefined> {
    const entries = await this.load();
    return entries.find(
      (e) => e.dev === st.dev && e.ino === st.ino && e.size === st.size && e.mtimeMs === st.mtimeMs && e.ctimeMs === st.ctimeMs && e.settings === settings,
    );
  }

  /**
   * Entries of other files with the same size and settings, one per
   * content, most recently used first: a payload rebuilt byte for byte (a
   * reproducible build writes a new file), copied or touched is not the
   * file the cache saw, but its content may be one the cache knows.
   */
  async withSize(size: number, settings: string, max = 4): Promise<PayloadCacheEntry[]> {
    const seen = new Set<string>();
    return (await this.load()).filter((e) => e.size === size && e.settings === settings && !seen.has(e.contentKey) && seen.add(e.contentKey)).slice(0, max);
  }

  /**
   * Whether `entry` may stand for the file without reading it: `now` (taken
   * just now) has the identity the entry recorded to the nanosecond, and
   * that identity was recorded at least {@link racyMarginNs} after the
   * file's last change. See the module comment.
   */
  trusts(entry: PayloadCacheEntry, now: FileIdentity | undefined): boolean {
    if (!now || entry.mtimeNs === undefined || entry.ctimeNs === undefined || entry.statAtNs === undefined) return false;
    if (now.dev !== entry.dev || now.ino !== entry.ino || now.size !== entry.size || now.mtimeNs !== entry.mtimeNs || now.ctimeNs !== entry.ctimeNs)
      return false;
    return BigInt(entry.statAtNs) - BigInt(entry.ctimeNs) >= racyMarginNs;
  }

  private hashesFile(key: string): string {
    return join(this.dir, 'chunks', `${key}.json`);
  }

  /** The chunk hashes recorded for an entry's content, when they are kept and match its content key. */
  async chunkHashes(entry: PayloadCacheEntry, hashChunkSize: number): Promise<string[] | undefined> {
    try {
      const hashes = JSON.parse(await readFile(this.hashesFile(entry.contentKey), 'utf8')) as unknown;
      if (!Array.isArray(hashes) || !hashes.every((h) => typeof h === 'string')) return undefined;
      return contentKey(entry.size, hashChunkSize, hashes) === entry.contentKey ? hashes : undefined;
    } catch {
      return undefined;
    }
  }

  /** Keeps a content's chunk hashes (named by its content key); failures to save are ignored. */
  async keepChunkHashes(key: string, hashes: readonly string[]): Promise<void> {
    try {
      await mkdir(join(this.dir, 'chunks'), { recursive: true });
      await writeFileAtomic(this.hashesFile(key), JSON.stringify(hashes), { mode: 0o600 });
    } catch {
      // Losing them only costs a read of the file next time.
    }
  }

  /** Records (or refreshes) an entry and saves the cache; failures to save are ignored. */
  async record(entry: Omit<PayloadCacheEntry, 'usedAt'>): Promise<void> {
    const entries = await this.load();
    const rest = entries.filter((e) => !(e.dev === entry.dev && e.ino === entry.ino && e.settings === entry.settings));
    rest.push({ ...entry, usedAt: Date.now() });
    rest.sort((a, b) => b.usedAt - a.usedAt);
    this.entries = rest.slice(0, MAX_ENTRIES);
    this.writing = this.writing.then(() => this.save()).catch(() => undefined);
    await this.writing;
  }

  private async save(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.file, JSON.stringify({ entries: this.entries }) + '\n', { mode: 0o600 });
  }
}
