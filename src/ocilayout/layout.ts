/**
 * OCI image layout directory (image-spec image-layout.md) as a ContentStore.
 * Writes are atomic: every blob goes to a temporary file inside the layout,
 * is hashed while written, verified, fsynced and renamed into
 * `blobs/<alg>/<hex>`; tags are collected and `index.json` is replaced (temp +
 * rename) only in `commit()`, after every blob is in place. Other images in
 * an existing layout are kept; a tag that is set again is moved.
 *
 * Several writers (processes, or stores in one process) may share a layout.
 * index.json is read, merged and replaced under a lock file, so no writer's
 * tags are lost. Each open writer registers itself in the temporary
 * directory; abort() removes the blobs its writer added only when no other
 * writer is registered (one may have found a blob present and skipped it)
 * and no committed image uses them. A kept blob is at worst unreferenced
 * garbage; a removed one could break an image.
 *
 * Temporary files are named with their writer's owner tag (owner.ts). A
 * writer killed outright cannot remove its own; every writer, on opening
 * and on committing (under the lock), removes those whose owner is gone.
 *
 * This file composes the parts: blobs.ts (blob files), index-file.ts
 * (index.json and oci-layout), lock.ts (the lock file) and temporaries.ts
 * (the temporary directory and writer registrations).
 */
import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type { ByteSource, CommittableStore, PushOptions, StoredBlob } from '../content/store.js';
import { fsError, isOciError, OciError } from '../errors.js';
import type { Descriptor, ImageIndex } from '../oci/descriptor.js';
import { isDigest } from '../oci/digest.js';
import { canonicalJson } from '../oci/json.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { Annotation, isGraphManifestMediaType } from '../oci/mediatypes.js';
import { makeDirs, syncDirectory, writeFileAtomic } from '../util/fs.js';
import { LayoutBlobs } from './blobs.js';
import { checkLayoutFile, isObject, OCI_LAYOUT_FILE, type PendingTag, readIndexFile, withTags } from './index-file.js';
import { LOCK_WAIT_MS, withLockFile } from './lock.js';
import { ownedName, removeDeadTemporaries, TMP_DIR, WriterRegistration } from './temporaries.js';

/** Next to index.json: whoever holds it may read and replace index.json (and remove blobs). */
const LOCK_FILE = 'index.json.lock';

/** Options for opening a layout. */
export interface LayoutOptions {
  /** Create the directory and layout files when missing (default false). */
  create?: boolean;
  /**
   * How messages about index.json name it, when the directory is not what
   * the user named (an archive extracted to a temporary directory).
   */
  indexName?: string;
  /**
   * How messages about failed writes name the layout, when the directory is
   * not what the user named (an archive being written through a temporary
   * layout beside it).
   */
  shownAs?: string;
  /**
   * How long to wait for another writer's lock on index.json, in
   * milliseconds (default 60 s), before failing.
   */
  lockWait?: number;
}

export class OciLayout implements CommittableStore {
  private readonly pending: PendingTag[] = [];
  /** The blobs, and what this writer added to them. */
  private readonly blobs: LayoutBlobs;
  /** This writer's registration in the temporary directory, while it is open. */
  private readonly registration: WriterRegistration;
  private registering?: Promise<void>;
  /**
   * The layout directory and the parents this writer created, deepest
   * first: removed again when the write is aborted before anything was
   * committed and nothing else is there.
   */
  private createdDirs: string[] = [];
  private committed = false;

  private constructor(
    readonly dir: string,
    private readonly indexName: string | undefined,
    private readonly lockWait: number,
    private readonly shownAs: string = dir,
  ) {
    this.blobs = new LayoutBlobs(dir, shownAs);
    const tmpDir = join(dir, TMP_DIR);
    this.registration = new WriterRegistration(tmpDir, shownAs === dir ? tmpDir : shownAs);
  }

  /**
   * Opens (and with `create`, initializes) a layout directory. Opened for
   * writing (`create`), an existing index.json is read and checked first.
   */
  static async open(dir: string, options: LayoutOptions = {}): Promise<OciLayout> {
    const layout = new OciLayout(dir, options.indexName, options.lockWait ?? LOCK_WAIT_MS, options.shownAs);
    let st;
    try {
      st = await stat(dir);
    } catch (err) {
      // Opened for reading, the layout is a source: one that is not there is not found (exit 4), as a missing tag is.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) throw fsError(err, dir, 'source');
    }
    if (st && !st.isDirectory()) {
      throw new OciError('INVALID_ARGUMENT', `${dir} is not a directory; an oci: location names a layout directory`);
    }
    if (!options.create) {
      await checkLayoutFile(dir);
      return layout;
    }
    try {
      if (!st) layout.createdDirs = await missingDirs(dir);
      try {
        await makeDirs(dir);
      } catch (err) {
        throw fsError(err, dir, 'write');
      }
      // Under the lock: an aborting writer that removes a new layout or its blobs sees this one registered, or is done.
      // Registered from here on, a writer that finds a blob present and skips it can rely on it staying.
      await layout.withLock(async () => {
        // A layout whose index.json commit() could not merge into fails now, before a blob is written
        // (and an abort could not tell which blobs no image uses, so they would stay).
        await layout.readIndex();
        await layout.init();
        // What writers that were killed left behind goes now: nobody else ever would.
        await removeDeadTemporaries(join(dir, TMP_DIR));
        await layout.registration.register();
      });
    } catch (err) {
      if (layout.createdDirs.length > 0) await layout.abortWith(0);
      throw err;
    }
    return layout;
  }

  private async init(): Promise<void> {
    try {
      await makeDirs(join(this.dir, 'blobs', 'sha256'));
      const layoutFile = join(this.dir, 'oci-layout');
      let existing: string | undefined;
      try {
        existing = await readFile(layoutFile, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (existing === undefined) await this.writeAtomic('oci-layout', Buffer.from(OCI_LAYOUT_FILE));
      else await checkLayoutFile(this.dir);
    } catch (err) {
      if (isOciError(err)) throw err;
      throw fsError(err, this.shownAs, 'write');
    }
  }

  /** Path of a blob by digest. */
  blobPath(digest: string): string {
    return this.blobs.path(digest);
  }

  /** Whether the blob is in place with the right bytes (hashed once while it stays the same file; LayoutBlobs.exists). */
  async exists(desc: Descriptor): Promise<boolean> {
    return this.blobs.exists(desc);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    return this.blobs.fetch(desc);
  }

  /** A small blob's bytes in one read, unchecked: for fetchAll, which checks them (WholeReader). */
  async readWhole(desc: Descriptor): Promise<Buffer> {
    return this.blobs.readWhole(desc);
  }

  async readBlobFrom(desc: Descriptor, offset: number): Promise<Readable> {
    return this.blobs.readFrom(desc, offset);
  }

  async push(desc: Descriptor, content: ByteSource, options: PushOptions = {}): Promise<void> {
    await this.ensureRegistered();
    if (await this.exists(desc)) {
      // Content-addressed: present means identical. Drain the source so producers finish.
      if (content instanceof Readable) content.resume();
      return;
    }
    const stored = await this.blobs.write(content, { digest: desc.digest, size: desc.size }, options.verifiedSource === true);
    if (stored.digest !== desc.digest) throw new OciError('DIGEST_MISMATCH', `blob digest ${stored.digest}, expected ${desc.digest}`);
  }

  async pushStream(content: ByteSource): Promise<StoredBlob> {
    await this.ensureRegistered();
    return this.blobs.write(content);
  }

  /** The current index.json (an empty index when the file is missing), checked as far as resolve() and commit() rely on it. */
  async readIndex(): Promise<ImageIndex> {
    return readIndexFile(join(this.dir, 'index.json'), this.indexName);
  }

  /**
   * Resolves a tag (ref.name annotation) or digest. With no reference, the
   * layout must hold exactly one manifest.
   */
  async resolve(reference?: string): Promise<Descriptor> {
    const index = await this.readIndex();
    if (reference === undefined || reference === '') {
      if (index.manifests.length === 1) return index.manifests[0]!;
      throw new OciError(
        index.manifests.length === 0 ? 'NOT_FOUND' : 'INVALID_ARGUMENT',
        index.manifests.length === 0 ? `layout ${this.dir} holds no image` : `layout ${this.dir} holds ${index.manifests.length} images; name one with :TAG`,
      );
    }
    const found = isDigest(reference)
      ? index.manifests.find((d) => d.digest === reference)
      : index.manifests.find((d) => d.annotations?.[Annotation.refName] === reference);
    if (!found) throw new OciError('NOT_FOUND', `no image "${reference}" in layout ${this.dir}`);
    return found;
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    this.pending.push({ tag, desc });
  }

  /**
   * Writes index.json with the pending tags; earlier entries with the same
   * tags are replaced. index.json is read again under the lock, so tags
   * another writer committed meanwhile are kept.
   */
  async commit(): Promise<void> {
    // Settled, registering is cleared (its finally): what is left to undo is in registration.
    await this.registering?.catch(() => {});
    if (this.pending.length > 0 || this.registration.registered) {
      await this.withLock(async () => {
        if (this.pending.length > 0) {
          const out = withTags(await this.readIndex(), this.pending);
          try {
            // The blobs' renames reach the disk before the index that names them, and the index's
            // own rename (writeAtomic syncs the directory) before commit returns: after a power loss
            // a tag never points at nothing.
            for (const dir of new Set([...this.blobs.added.values()].map((f) => dirname(f)))) await syncDirectory(dir);
            await this.writeAtomic('index.json', canonicalJson(out));
          } catch (err) {
            throw fsError(err, this.shownAs === this.dir ? join(this.dir, 'index.json') : this.shownAs, 'write');
          }
          this.pending.length = 0;
          this.committed = true;
        }
        await this.registration.unregister();
        await removeDeadTemporaries(join(this.dir, TMP_DIR));
        await rmdir(join(this.dir, TMP_DIR)).catch(() => {});
      });
    }
    this.blobs.forgetAdded();
  }

  /**
   * Forgets pending tags, removes this writer's temporary files and, when no
   * other writer is registered, the blobs it added that no committed image
   * uses, and a layout directory it created that holds nothing. Never
   * fails: what cannot be decided (the lock is not to be had) stays.
   */
  async abort(): Promise<void> {
    await this.abortWith(this.lockWait);
  }

  private async abortWith(lockWait: number): Promise<void> {
    this.pending.length = 0;
    await this.blobs.removeTemporaries();
    await this.registering?.catch(() => {});
    // A directory that is gone (or never came to be) has nothing to clean up, and is not to be made again for the lock.
    const there = await stat(this.dir).then(
      () => true,
      () => false,
    );
    const { added, addedDirs } = this.blobs;
    const work = there && (this.registration.registered || added.size > 0 || addedDirs.size > 0 || (this.createdDirs.length > 0 && !this.committed));
    if (work) {
      await this.withLock(async () => {
        await this.registration.unregister();
        if (await this.registration.othersRegistered()) return;
        if (added.size > 0) {
          const used = await this.committedBlobs();
          for (const [digest, path] of added) {
            if (used && !used.has(digest)) await rm(path, { force: true }).catch(() => {});
          }
        }
        for (const dir of addedDirs) await rmdir(dir).catch(() => {});
        await rmdir(join(this.dir, TMP_DIR)).catch(() => {});
        if (this.createdDirs.length > 0 && !this.committed) await this.removeCreatedLayout();
      }, lockWait).catch(async () => {
        // Without the lock nothing shared is removed; this writer only stops counting as open.
        await this.registration.unregister();
      });
    }
    this.registration.forget();
    this.blobs.forgetAdded();
  }

  /** Joins the writers of this layout (under the lock), unless already registered. */
  private async ensureRegistered(): Promise<void> {
    if (this.registration.registered) return;
    this.registering ??= this.withLock(() => this.registration.register()).finally(() => {
      this.registering = undefined;
    });
    await this.registering;
  }

  /**
   * Every digest that images in index.json reach (manifests, indexes,
   * configs, layers, subjects), or undefined when a manifest on the way
   * cannot be read and so nothing can be ruled out. Call with the lock held.
   */
  private async committedBlobs(): Promise<Set<string> | undefined> {
    let index: ImageIndex;
    try {
      index = await this.readIndex();
    } catch {
      return undefined;
    }
    const seen = new Set<string>();
    const queue: unknown[] = [...index.manifests];
    while (queue.length > 0) {
      const d = queue.pop();
      if (!isObject(d) || typeof d.digest !== 'string' || !isDigest(d.digest) || seen.has(d.digest)) continue;
      seen.add(d.digest);
      const mediaType = typeof d.mediaType === 'string' ? d.mediaType : '';
      // What a graph walk follows (OCI artifact manifests too) must be readable: one that is not may use this writer's blobs.
      const graph = isGraphManifestMediaType(mediaType);
      // Other JSON (manifests under a type of their own, configs) is looked into too, and passed over when it cannot be read.
      if (!graph && !/json$/.test(mediaType)) continue;
      let parsed: unknown;
      try {
        const path = this.blobPath(d.digest);
        if ((await stat(path)).size > MAX_MANIFEST_BYTES) {
          if (graph) return undefined;
          continue;
        }
        parsed = JSON.parse(await readFile(path, 'utf8'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        if (graph) return undefined;
        continue;
      }
      if (!isObject(parsed)) continue;
      for (const key of ['config', 'subject']) queue.push(parsed[key]);
      for (const key of ['layers', 'manifests', 'blobs']) if (Array.isArray(parsed[key])) queue.push(...(parsed[key] as unknown[]));
    }
    return seen;
  }

  /**
   * Removes the layout directory (and the parents) this writer created when
   * it is still an empty layout: oci-layout, an index without images,
   * empty blob directories. Anything else found there keeps it. Call with
   * the lock held; the lock file goes with the directory.
   */
  private async removeCreatedLayout(): Promise<void> {
    const names = await readdir(this.dir).catch(() => undefined);
    if (!names) return;
    const known = ['oci-layout', 'index.json', 'blobs', TMP_DIR, LOCK_FILE];
    if (names.some((n) => !known.includes(n))) return;
    if (names.includes('index.json') && (await this.readIndex().catch(() => undefined))?.manifests.length !== 0) return;
    if (names.includes(TMP_DIR)) return; // rmdir above failed: something is in it
    const blobs = join(this.dir, 'blobs');
    const algs = names.includes('blobs') ? await readdir(blobs).catch(() => undefined) : [];
    if (!algs) return;
    for (const alg of algs) {
      if ((await readdir(join(blobs, alg)).catch(() => [''])).length > 0) return;
    }
    try {
      for (const alg of algs) await rmdir(join(blobs, alg));
      if (names.includes('blobs')) await rmdir(blobs);
      await rm(join(this.dir, 'index.json'), { force: true });
      await rm(join(this.dir, 'oci-layout'), { force: true });
      await rm(join(this.dir, LOCK_FILE), { force: true });
      for (const dir of this.createdDirs) await rmdir(dir);
    } catch {
      // Another writer arrived in between: what is left stays.
    }
  }

  /**
   * Runs `fn` holding the layout's lock (withLockFile on index.json.lock).
   * A layout directory that is gone (an empty layout dropped by an aborted
   * writer) is made again for it.
   */
  private async withLock<T>(fn: () => Promise<T>, wait = this.lockWait): Promise<T> {
    return withLockFile(join(this.dir, LOCK_FILE), fn, {
      wait,
      what: `layout ${this.dir}`,
      missing: () => makeDirs(this.dir),
    });
  }

  /**
   * Replaces a small file of the layout atomically (writeFileAtomic). The
   * temporary file is named in the temporary directory with this writer's
   * owner tag, so one left by a killed writer is swept like its blobs.
   */
  private async writeAtomic(name: string, data: Buffer): Promise<void> {
    const tmpDir = join(this.dir, TMP_DIR);
    await makeDirs(tmpDir);
    await writeFileAtomic(join(this.dir, name), data, { temp: join(tmpDir, ownedName(name)) });
  }
}

/** `dir` and its parents that do not exist, deepest first. */
async function missingDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    try {
      await stat(p);
      return out;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return out;
      out.push(p);
      if (dirname(p) === p) return out;
    }
  }
}
