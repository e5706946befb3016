/**
 * `oci-archive:` — an OCI image layout packed as a tar file. Writing goes
 * through a layout in a temporary directory beside the file (blob sizes must
 * be known before their tar headers); commit() streams a deterministic tar
 * (sorted names, mtime 0, uid/gid 0, fixed modes) to a temporary file and
 * renames it over the target. Reading extracts to a temporary directory.
 *
 * Writers of one archive (processes, or writers in one process) commit one
 * at a time, under a lock file next to the archive (`FILE.lock`, the
 * layout's lock mechanism): an archive is replaced as a whole, so each
 * commit reads the archive as it is then, merges its tags into that and
 * packs it while no other writer can. Otherwise the last writer's copy
 * would win and tags committed meanwhile would be lost.
 */

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type { ByteSource, CommittableStore, PushOptions, StoredBlob } from '../content/store.js';
import { fsError, InterruptedError, isOciError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { fileKey, syncDirectory } from '../util/fs.js';
import { OciLayout } from './layout.js';
import { withLockFile } from './lock.js';
import { ownerAlive, ownerTag } from './owner.js';

const EPOCH = new Date(0);
/**
 * How long a writer waits for another writer of the same archive by default.
 * Longer than a layout's wait: the holder packs the whole archive under the
 * lock (and keeps the lock fresh meanwhile, so it is not taken over).
 */
const ARCHIVE_LOCK_WAIT_MS = 10 * 60_000;

/** The name prefix of what a writer puts beside an archive while it works (its temporary layout and tar). */
export function besideArchivePrefix(file: string): string {
  return `.${basename(file)}.oci-os-`;
}

/**
 * After the prefix, the names beside an archive carry their writer's owner
 * tag (owner.ts): `tmp-<owner>-<16 hex>` (the tar being packed) and
 * `<owner>-<6 characters>` (the temporary layout, made by mkdtemp).
 */
const BESIDE_OWNER = /^(?:tmp-)?(\d+(?:\.\d+)?)-[0-9A-Za-z]+$/;

/**
 * Removes what writers of `file` that are gone (killed: they could not do
 * it themselves) left beside it: temporary layouts and half-packed tars.
 * What a writer that may still run left stays. Never fails.
 */
export async function removeDeadBesideArchive(file: string): Promise<void> {
  const prefix = besideArchivePrefix(file);
  const dir = dirname(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const owner = BESIDE_OWNER.exec(name.slice(prefix.length))?.[1];
    if (owner !== undefined && !ownerAlive(owner)) await rm(join(dir, name), { recursive: true, force: true }).catch(() => {});
  }
}

/** The lock file that archive writers of `file` take turns on. */
export function archiveLockFile(file: string): string {
  return `${file}.lock`;
}

/** Lists every file and directory below `dir`, sorted, as tar entry names. */
async function listTree(dir: string, prefix = ''): Promise<Array<{ name: string; path: string; dir: boolean }>> {
  const out: Array<{ name: string; path: string; dir: boolean }> = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.oci-os-tmp')) continue;
    const name = prefix + e.name;
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      out.push({ name: name + '/', path, dir: true });
      out.push(...(await listTree(path, name + '/')));
    } else if (e.isFile()) {
      out.push({ name, path, dir: false });
    }
  }
  return out;
}

/** Streams a deterministic tar of `dir` into `file` (atomically: temp file + rename). */
export async function packLayout(dir: string, file: string): Promise<void> {
  // Random, not a time: two packs of one file in one process and millisecond must not share it.
  const tmp = join(dirname(file), `${besideArchivePrefix(file)}tmp-${ownerTag()}-${randomBytes(8).toString('hex')}`);
  const pack = tar.pack();
  const out = createWriteStream(tmp, { flags: 'wx' });
  const written = pipeline(pack, out);
  // Awaited below; the output can fail (no space left) while an entry is being read, before then.
  written.catch(() => undefined);
  try {
    for (const e of await listTree(dir)) {
      if (e.dir) {
        pack.entry({ name: e.name, type: 'directory', mode: 0o755, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' });
        continue;
      }
      const size = (await stat(e.path)).size;
      const entry = pack.entry({ name: e.name, type: 'file', size, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' });
      await pipeline(createReadStream(e.path, { highWaterMark: 1 << 20 }), entry);
    }
    pack.finalize();
    await written;
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    // The rename itself reaches the disk before the write counts as done.
    await syncDirectory(dirname(file));
  } catch (err) {
    pack.destroy();
    await written.catch(() => {});
    await unlink(tmp).catch(() => {});
    if (isOciError(err)) throw err;
    throw fsError(err, file, 'write');
  }
}

/**
 * Extracts an oci-archive into `dir`, refusing entries that would land outside it.
 * `signal` stops it mid-file (ABORTED); what was extracted is the caller's to remove.
 * With `keepBlobs`, blob files already in `dir` are not written again (same
 * name, same digest: same bytes). With `source`, a missing `file` is
 * NOT_FOUND rather than unreadable (an archive opened for reading).
 */
export async function unpackArchive(
  file: string,
  dir: string,
  signal?: AbortSignal,
  options: { keepBlobs?: boolean; source?: boolean; writeName?: string } = {},
): Promise<void> {
  const extract = tar.extract();
  let input: Readable;
  try {
    await stat(file);
    input = createReadStream(file, { highWaterMark: 1 << 20 });
  } catch (err) {
    // An archive the user named to read from that is not there is not found (exit 4), as a missing tag is.
    throw fsError(err, file, options.source ? 'source' : 'read');
  }
  const root = dir.endsWith(sep) ? dir : dir + sep;
  const blobs = join(dir, 'blobs') + sep;
  const done = pipeline(input, extract);
  // Awaited below; an interrupt can fail it while an entry's directory is being made.
  done.catch(() => undefined);
  // Failing the input fails the extractor, and with it the entry being written.
  const onAbort = (): void => {
    input.destroy(new InterruptedError(`interrupted while unpacking ${file}`));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  try {
    for await (const entry of extract) {
      const name = entry.header.name.replace(/^\.\//, '');
      const target = join(dir, name);
      if (name.startsWith('/') || (target + sep !== root && !target.startsWith(root))) {
        // Bad input (exit 2), as an archive that is no tar is: no content failed a check.
        throw new OciError('INVALID_ARGUMENT', `${file}: archive entry "${entry.header.name}" points outside the layout`);
      }
      if (entry.header.type === 'directory') {
        await mkdir(target, { recursive: true });
        entry.resume();
      } else if (entry.header.type === 'file' || entry.header.type === 'contiguous-file') {
        if (
          options.keepBlobs &&
          target.startsWith(blobs) &&
          (await lstat(target).then(
            (st) => st.isFile(),
            () => false,
          ))
        ) {
          entry.resume();
          continue;
        }
        // Failing to write what was read (no space left) is not the archive's fault: said as a write.
        const written = (err: unknown): OciError => fsError(err, options.writeName ?? dir, 'write');
        await mkdir(dirname(target), { recursive: true }).catch((err: unknown) => {
          throw written(err);
        });
        const out = createWriteStream(target);
        let outFailed: unknown;
        out.once('error', (err) => {
          outFailed = err;
        });
        await pipeline(entry, out).catch((err: unknown) => {
          throw err === outFailed ? written(err) : err;
        });
      } else {
        entry.resume();
      }
    }
    await done;
  } catch (err) {
    input.destroy();
    await done.catch(() => {});
    if (isOciError(err)) throw err;
    if ((err as NodeJS.ErrnoException).code?.startsWith?.('E')) throw fsError(err, file, 'read');
    throw new OciError('INVALID_ARGUMENT', `${file} is not a readable tar archive: ${(err as Error).message}`, { cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Options for writing an oci-archive. */
export interface ArchiveWriterOptions {
  /** How long commit() waits for another writer of the same archive, in milliseconds (default 10 min), before failing. */
  lockWait?: number;
}

/**
 * A ContentStore that writes an oci-archive. An existing archive's images are
 * kept, as they are when commit() runs. Nothing appears at `file` until commit().
 */
export class OciArchiveWriter implements CommittableStore {
  private constructor(
    readonly file: string,
    private readonly tmpDir: string,
    private readonly layout: OciLayout,
    /** The archive file extracted into tmpDir (fileKey), undefined when there was none. */
    private readonly extracted: string | undefined,
    private readonly lockWait: number,
  ) {}

  static async open(file: string, options: ArchiveWriterOptions = {}): Promise<OciArchiveWriter> {
    let extracted: string | undefined;
    try {
      const st = await stat(file);
      if (st.isDirectory())
        throw new OciError('INVALID_ARGUMENT', `${file} is a directory; an oci-archive: location names a tar file (use oci:${file} for a layout directory)`);
      // Taken before extracting: if the archive is replaced in between, commit() sees a change and reads it again.
      extracted = fileKey(st, { ctime: true });
    } catch (err) {
      if (isOciError(err)) throw err;
      // No archive there (ENOTDIR: a parent is a file): whether one can be written is for mkdtemp below to tell.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fsError(err, file, 'read');
    }
    // What killed writers left beside the archive goes first: nobody else ever would, and it takes space this writer may need.
    await removeDeadBesideArchive(file);
    let tmpDir: string;
    try {
      tmpDir = await mkdtemp(join(dirname(file), `${besideArchivePrefix(file)}${ownerTag()}-`));
    } catch (err) {
      // Named as the archive the user asked for, not the directory the temporary layout goes in.
      throw fsError(err, file, 'write');
    }
    try {
      // Extracted now so that blobs already in the archive are not written again, and a bad archive fails before the build.
      if (extracted !== undefined) await unpackArchive(file, tmpDir, undefined, { writeName: file });
      const layout = await OciLayout.open(tmpDir, { create: true, indexName: `${file}: index.json`, shownAs: file });
      return new OciArchiveWriter(file, tmpDir, layout, extracted, options.lockWait ?? ARCHIVE_LOCK_WAIT_MS);
    } catch (err) {
      await rm(tmpDir, { recursive: true, force: true });
      throw err;
    }
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.layout.exists(desc);
  }
  fetch(desc: Descriptor): Promise<Readable> {
    return this.layout.fetch(desc);
  }
  push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void> {
    return this.layout.push(desc, content, options);
  }
  pushStream(content: ByteSource): Promise<StoredBlob> {
    return this.layout.pushStream(content);
  }
  resolve(reference?: string): Promise<Descriptor> {
    return this.layout.resolve(reference);
  }
  tag(desc: Descriptor, tag: string): Promise<void> {
    return this.layout.tag(desc, tag);
  }

  /**
   * Under the archive's lock: brings the temporary layout up to the archive
   * as it is now, merges the pending tags into its index.json and packs it
   * over the archive.
   */
  async commit(): Promise<void> {
    try {
      await withLockFile(
        archiveLockFile(this.file),
        async () => {
          await removeDeadBesideArchive(this.file);
          await this.catchUp();
          await this.layout.commit();
          await packLayout(this.tmpDir, this.file);
        },
        { wait: this.lockWait, what: `archive ${this.file}` },
      );
    } finally {
      await rm(this.tmpDir, { recursive: true, force: true });
    }
  }

  /**
   * When another writer replaced (or someone removed) the archive since
   * open(), what was extracted then is out of date: its index.json gives way
   * to the current one (none, when the archive is gone), and the current
   * archive's blobs are added. Blobs already here stay; one the archive no
   * longer has is at worst unreferenced. Call with the archive's lock held.
   */
  private async catchUp(): Promise<void> {
    let now: string | undefined;
    try {
      now = fileKey(await stat(this.file), { ctime: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, this.file, 'read');
    }
    if (now === this.extracted) return;
    await rm(join(this.tmpDir, 'index.json'), { force: true });
    if (now !== undefined) await unpackArchive(this.file, this.tmpDir, undefined, { keepBlobs: true, writeName: this.file });
  }

  async abort(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
  }
}

/**
 * Opens an existing oci-archive for reading: extracts it and returns the
 * layout and a cleanup. Aborted by `signal` or failed, it removes what it
 * extracted before rejecting.
 */
export async function openArchiveForReading(file: string, options: { signal?: AbortSignal } = {}): Promise<{ layout: OciLayout; close: () => Promise<void> }> {
  const tmpDir = await mkdtemp(join(tmpdir(), 'oci-os-archive-'));
  try {
    await unpackArchive(file, tmpDir, options.signal, { source: true });
    // Messages about index.json name the archive, not the temporary directory it was extracted to.
    const layout = await OciLayout.open(tmpDir, { indexName: `${file}: index.json` });
    return { layout, close: () => rm(tmpDir, { recursive: true, force: true }) };
  } catch (err) {
    await rm(tmpDir, { recursive: true, force: true });
    throw err;
  }
}
