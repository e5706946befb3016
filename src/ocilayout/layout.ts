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
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile, rmdir } from 'node:fs/promises';
import type { Stats, WriteStream } from 'node:fs';
import { makeDirs } from '../util/fs.js';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciError, fsError, isOciError } from '../errors.js';
import type { ByteSource, CommittableStore, PushOptions, StoredBlob } from '../content/store.js';
import type { Descriptor, ImageIndex } from '../oci/descriptor.js';
import { DigestStream, digestAlgorithm, digestHex, isDigest } from '../oci/digest.js';
import { Annotation, MediaType, isGraphManifestMediaType } from '../oci/mediatypes.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { canonicalJson } from '../oci/json.js';
import { ownerAlive, ownerTag } from './owner.js';

/** The oci-layout file exactly as the format's reference builder writes it. */
const OCI_LAYOUT_FILE = '{"imageLayoutVersion": "1.0.0"}\n';
const TMP_DIR = '.oci-os-tmp';
/** Next to index.json: whoever holds it may read and replace index.json (and remove blobs). */
const LOCK_FILE = 'index.json.lock';
/** A lock this old is taken over even when its holder seems alive (its pid may be reused). */
const LOCK_STALE_MS = 30_000;
/** How long a writer waits for the lock by default; longer than LOCK_STALE_MS, so a stale lock is always taken over first. */
const LOCK_WAIT_MS = 60_000;
/** Names in the temporary directory that carry their writer's owner tag (owner.ts): `<what>-<pid>[.<start>]-<16 hex>`. */
const OWNED_NAME = /-(\d+(?:\.\d+)?)-[0-9a-f]{16}$/;

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

/** A pending change to index.json: tag → descriptor. */
interface PendingTag {
  tag: string;
  desc: Descriptor;
}

export class OciLayout implements CommittableStore {
  private readonly pending: PendingTag[] = [];
  /** Blobs this instance added, digest → path (removed again by abort() when no one else may use them). */
  private readonly added = new Map<string, string>();
  /** `blobs/<alg>` directories this instance created (removed again by abort() when empty). */
  private readonly addedDirs = new Set<string>();
  /** Temporary files being written by this instance: abort() removes these and no others. */
  private readonly temps = new Set<string>();
  /**
   * Blobs whose bytes were hashed (or written) by this instance, by digest,
   * with the file they were found in: a blob is hashed at most once while it
   * stays the same file.
   */
  private readonly checked = new Map<string, { file: string; ok: Promise<boolean> }>();
  /** This writer's registration file in the temporary directory, while it is open. */
  private registration?: string;
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
  ) {}

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
      await layout.checkLayoutFile();
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
        await layout.removeDeadTemporaries();
        await layout.register();
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
      else await this.checkLayoutFile();
    } catch (err) {
      if (isOciError(err)) throw err;
      throw fsError(err, this.shownAs, 'write');
    }
  }

  private async checkLayoutFile(): Promise<void> {
    const file = join(this.dir, 'oci-layout');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new OciError('NOT_FOUND', `${this.dir} is not an OCI image layout (no oci-layout file)`);
      }
      throw fsError(err, file, 'read');
    }
    // A malformed oci-layout is bad input (exit 2), as a malformed index.json is: no content failed a check.
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new OciError('INVALID_ARGUMENT', `${file} is not valid JSON`);
    }
    if (!isObject(parsed)) throw new OciError('INVALID_ARGUMENT', `${file} is not a JSON object`);
    const version = parsed.imageLayoutVersion;
    if (version !== '1.0.0') throw new OciError('UNSUPPORTED', `${file}: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
  }

  /** Path of a blob by digest. */
  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new OciError('INVALID_ARGUMENT', `invalid digest "${digest}"`);
    const alg = digest.slice(0, digest.indexOf(':'));
    return join(this.dir, 'blobs', alg, digestHex(digest));
  }

  /**
   * Whether the blob is in place with the right bytes. Callers skip writing
   * a blob that exists, so its size is not enough: a damaged file of the
   * same size would end up tagged. The file is hashed (once per instance
   * while it stays the same file); a mismatch counts as absent, and push()
   * then replaces it atomically.
   */
  async exists(desc: Descriptor): Promise<boolean> {
    let path: string;
    let st: Stats;
    try {
      path = this.blobPath(desc.digest);
      st = await stat(path);
    } catch {
      return false;
    }
    if (!st.isFile() || st.size !== desc.size) return false;
    const file = fileKey(st);
    const cached = this.checked.get(desc.digest);
    if (cached?.file === file) return cached.ok;
    // Read through fetch(), which checks digest and size as it streams.
    const ok = (async () => {
      for await (const _ of await this.fetch(desc)) void _;
      return true;
    })().catch(() => false);
    this.checked.set(desc.digest, { file, ok });
    return ok;
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const path = this.blobPath(desc.digest);
    try {
      await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new OciError('NOT_FOUND', `blob ${desc.digest} is not in layout ${this.dir}`);
      }
      throw fsError(err, path, 'read');
    }
    const verify = new DigestStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}` });
    const src = createReadStream(path, { highWaterMark: 1 << 20 });
    src.on('error', (err) => verify.destroy(fsError(err, path, 'read')));
    // A reader that stops early (a check that failed, a destination that did) destroys verify: the file closes with it.
    verify.once('close', () => src.destroy());
    return src.pipe(verify);
  }

  async readBlobFrom(desc: Descriptor, offset: number): Promise<Readable> {
    const path = this.blobPath(desc.digest);
    const src = createReadStream(path, { start: offset, highWaterMark: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      src.once('open', () => resolve());
      src.once('error', (err) => reject(err));
    }).catch((err: unknown) => {
      throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? new OciError('NOT_FOUND', `blob ${desc.digest} is not in layout ${this.dir}`) : fsError(err, path, 'read');
    });
    return src;
  }

  async push(desc: Descriptor, content: ByteSource, options: PushOptions = {}): Promise<void> {
    await this.ensureRegistered();
    if (await this.exists(desc)) {
      // Content-addressed: present means identical. Drain the source so producers finish.
      if (content instanceof Readable) content.resume();
      return;
    }
    const stored = await this.writeBlob(content, { digest: desc.digest, size: desc.size }, options.verifiedSource === true);
    if (stored.digest !== desc.digest) throw new OciError('DIGEST_MISMATCH', `blob digest ${stored.digest}, expected ${desc.digest}`);
  }

  async pushStream(content: ByteSource): Promise<StoredBlob> {
    await this.ensureRegistered();
    return this.writeBlob(content);
  }

  /**
   * Writes a blob to a temporary file while hashing it, verifies it, then
   * renames it into place. A `trusted` source (one that fails unless its
   * bytes match `expected`, PushOptions.verifiedSource) is not hashed again;
   * its size is still checked.
   */
  private async writeBlob(content: ByteSource, expected?: { digest: string; size: number }, trusted = false): Promise<StoredBlob> {
    const tmpDir = join(this.dir, TMP_DIR);
    const tmp = join(tmpDir, ownedName('blob'));
    // A digest that cannot be checked is refused before anything is written.
    if (expected) digestAlgorithm(expected.digest, `blob ${expected.digest}`);
    const hasher = trusted && expected ? undefined : new DigestStream(expected ? { ...expected, what: `blob ${expected.digest}` } : undefined);
    this.temps.add(tmp);
    let out: WriteStream | undefined;
    try {
      await makeDirs(tmpDir);
      out = createWriteStream(tmp, { flags: 'wx' });
      // Byte mode with a small high-water mark: an object-mode Readable.from would read 16 frames ahead.
      const source = content instanceof Readable ? content : Readable.from(content, { objectMode: false, highWaterMark: 1 << 16 });
      await (hasher ? pipeline(source, hasher, out) : pipeline(source, out));
      const fh = await open(tmp, 'r');
      let written: number;
      try {
        await fh.sync();
        written = (await fh.stat()).size;
      } finally {
        await fh.close();
      }
      const { digest, size } = hasher ? hasher.digestResult : { digest: expected!.digest, size: written };
      if (!hasher && size !== expected!.size) throw new OciError('SIZE_MISMATCH', `blob ${expected!.digest}: got ${size} bytes, expected ${expected!.size}`);
      const dest = this.blobPath(digest);
      await this.algorithmDir(dirname(dest));
      // Any file already there (even a damaged one now replaced) was not added by this writer, so abort() leaves it.
      const existed = await lstat(dest).then(() => true, () => false);
      await rename(tmp, dest);
      this.temps.delete(tmp);
      if (!existed) this.added.set(digest, dest);
      const st = await stat(dest).catch(() => undefined);
      if (st) this.checked.set(digest, { file: fileKey(st), ok: Promise.resolve(true) });
      return { digest, size };
    } catch (err) {
      this.temps.delete(tmp);
      // A stream failed early may still be opening (creating) the file: removed once it is closed, or it would stay.
      if (out && !out.closed) {
        const closed = new Promise<void>((resolve) => out!.once('close', () => resolve()));
        out.destroy();
        await closed;
      }
      await unlink(tmp).catch(() => {});
      if (isOciError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw fsError(err, this.shownAs, 'write');
      throw err;
    }
  }

  /**
   * Creates `blobs/<alg>` on first use: a layout starts with `blobs/sha256`
   * only, and copied content may use another algorithm (sha512).
   */
  private async algorithmDir(dir: string): Promise<void> {
    try {
      await mkdir(dir);
      this.addedDirs.add(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      if (code !== 'ENOENT') throw err;
      // `blobs` itself is gone (an empty layout removed by someone else): made again.
      await makeDirs(dir);
      this.addedDirs.add(dir);
    }
  }

  /** The current index.json (an empty index when the file is missing), checked as far as resolve() and commit() rely on it. */
  async readIndex(): Promise<ImageIndex> {
    const file = join(this.dir, 'index.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
      throw fsError(err, file, 'read');
    }
    const name = this.indexName ?? file;
    const invalid = (what: string): OciError => new OciError('INVALID_ARGUMENT', `${name} ${what}`);
    const invalidEntry = (i: number, what: string): OciError => new OciError('INVALID_ARGUMENT', `${name}: manifests[${i}] ${what}`);
    let index: ImageIndex;
    try {
      index = JSON.parse(text) as ImageIndex;
    } catch {
      throw invalid('is not valid JSON');
    }
    if (!isObject(index)) throw invalid('is not a JSON object');
    if (!Array.isArray(index.manifests)) throw invalid('has no manifests array');
    index.manifests.forEach((d: unknown, i) => {
      if (!isObject(d)) throw invalidEntry(i, `is ${d === null ? 'null' : Array.isArray(d) ? 'an array' : `a ${typeof d}`}, not a descriptor object`);
      if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalidEntry(i, 'has no mediaType');
      if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw invalidEntry(i, `has no valid digest (${shown(d.digest)})`);
      if (!Number.isSafeInteger(d.size) || (d.size as number) < 0) throw invalidEntry(i, `has no valid size (${shown(d.size)})`);
      if (d.annotations !== undefined && !isObject(d.annotations)) throw invalidEntry(i, 'has annotations that are not an object');
    });
    return index;
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
    if (this.pending.length > 0 || this.registration) {
      await this.withLock(async () => {
        if (this.pending.length > 0) {
          const index = await this.readIndex();
          let manifests = index.manifests;
          for (const { tag, desc } of this.pending) {
            manifests = manifests.filter((d) => d.annotations?.[Annotation.refName] !== tag);
            const entry: Descriptor = { ...desc, annotations: { ...(desc.annotations ?? {}), [Annotation.refName]: tag } };
            manifests.push(orderDescriptor(entry));
          }
          const out: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
          if (index.annotations) out.annotations = index.annotations;
          try {
            // The blobs' renames reach the disk before the index that names them, and the index's
            // own rename before commit returns: after a power loss a tag never points at nothing.
            for (const dir of new Set([...this.added.values()].map((f) => dirname(f)))) await syncDirectory(dir);
            await this.writeAtomic('index.json', canonicalJson(out));
            await syncDirectory(this.dir);
          } catch (err) {
            throw fsError(err, this.shownAs === this.dir ? join(this.dir, 'index.json') : this.shownAs, 'write');
          }
          this.pending.length = 0;
          this.committed = true;
        }
        await this.unregister();
        await this.removeDeadTemporaries();
        await rmdir(join(this.dir, TMP_DIR)).catch(() => {});
      });
    }
    this.added.clear();
    this.addedDirs.clear();
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
    for (const tmp of this.temps) await unlink(tmp).catch(() => {});
    this.temps.clear();
    await this.registering?.catch(() => {});
    // A directory that is gone (or never came to be) has nothing to clean up, and is not to be made again for the lock.
    const there = await stat(this.dir).then(() => true, () => false);
    const work = there && (this.registration !== undefined || this.added.size > 0 || this.addedDirs.size > 0 || (this.createdDirs.length > 0 && !this.committed));
    if (work) {
      await this.withLock(async () => {
        await this.unregister();
        if (await this.otherWriters()) return;
        if (this.added.size > 0) {
          const used = await this.committedBlobs();
          for (const [digest, path] of this.added) {
            if (used && !used.has(digest)) await rm(path, { force: true }).catch(() => {});
          }
        }
        for (const dir of this.addedDirs) await rmdir(dir).catch(() => {});
        await rmdir(join(this.dir, TMP_DIR)).catch(() => {});
        if (this.createdDirs.length > 0 && !this.committed) await this.removeCreatedLayout();
      }, lockWait).catch(async () => {
        // Without the lock nothing shared is removed; this writer only stops counting as open.
        await this.unregister();
      });
    }
    this.registration = undefined;
    this.added.clear();
    this.addedDirs.clear();
  }

  /** Joins the writers of this layout (under the lock), unless already registered. */
  private async ensureRegistered(): Promise<void> {
    if (this.registration) return;
    this.registering ??= this.withLock(() => this.register()).finally(() => {
      this.registering = undefined;
    });
    await this.registering;
  }

  /** Call with the lock held. */
  private async register(): Promise<void> {
    const tmpDir = join(this.dir, TMP_DIR);
    const file = join(tmpDir, ownedName('writer'));
    try {
      await makeDirs(tmpDir);
      await writeFile(file, '', { flag: 'wx' });
    } catch (err) {
      throw fsError(err, this.shownAs === this.dir ? tmpDir : this.shownAs, 'write');
    }
    this.registration = file;
  }

  private async unregister(): Promise<void> {
    if (!this.registration) return;
    await unlink(this.registration).catch(() => {});
    this.registration = undefined;
  }

  /**
   * Whether another writer is registered. Call with the lock held.
   * Registrations and temporary files of processes that are gone are
   * removed on the way.
   */
  private async otherWriters(): Promise<boolean> {
    const left = await this.removeDeadTemporaries();
    return left.some((name) => name.startsWith('writer-') && join(this.dir, TMP_DIR, name) !== this.registration);
  }

  /**
   * Removes the temporary files (blobs being written, registrations, small
   * files on their way in) of writers that are gone: killed, they could not
   * remove their own. Returns the names left, those of writers that may
   * still run (this one included). Call with the lock held.
   */
  private async removeDeadTemporaries(): Promise<string[]> {
    const tmpDir = join(this.dir, TMP_DIR);
    let names: string[];
    try {
      names = await readdir(tmpDir);
    } catch {
      return [];
    }
    const left: string[] = [];
    for (const name of names) {
      const owner = OWNED_NAME.exec(name)?.[1];
      if (owner !== undefined && !ownerAlive(owner)) await rm(join(tmpDir, name), { force: true, recursive: true }).catch(() => {});
      else left.push(name);
    }
    return left;
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

  /** Writes a small file atomically (temp + fsync + rename). */
  private async writeAtomic(name: string, data: Buffer): Promise<void> {
    const tmpDir = join(this.dir, TMP_DIR);
    await makeDirs(tmpDir);
    const tmp = join(tmpDir, ownedName(name));
    try {
      await writeFile(tmp, data, { flag: 'wx' });
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, name));
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }
}

/** How withLockFile waits, and what it names. */
export interface LockFileOptions {
  /** How long to wait for another holder, in milliseconds (default 60 s). */
  wait?: number;
  /** What the lock guards, as messages name it ("layout DIR", "archive FILE"). */
  what: string;
  /** Makes the lock's directory again when it is missing; without it, a missing directory fails. */
  missing?: () => Promise<void>;
}

/**
 * Runs `fn` holding a lock: a file created exclusively (O_EXCL), holding the
 * owner tag (pid and start time, owner.ts) of its holder. A lock whose holder is gone, or older than
 * LOCK_STALE_MS, is taken over; otherwise this waits up to `wait` ms and
 * then fails naming the lock file. While `fn` runs the lock's time is
 * renewed, so a holder that takes long (packing a large archive) is not
 * taken for stale.
 */
export async function withLockFile<T>(lock: string, fn: () => Promise<T>, options: LockFileOptions): Promise<T> {
  const wait = options.wait ?? LOCK_WAIT_MS;
  const token = `${ownerTag()} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + wait;
  let delay = 5;
  let missing = 0;
  for (;;) {
    try {
      await writeFile(lock, token, { flag: 'wx' });
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && options.missing && missing++ < 3) {
        await options.missing().catch(() => {});
        continue;
      }
      if (code !== 'EEXIST') throw fsError(err, lock, 'write');
    }
    if (await takeOverStale(lock)) continue;
    if (Date.now() >= deadline) {
      throw new OciError('OUTPUT_UNWRITABLE', `${options.what} is locked by another writer (${lock}); gave up after ${wait < 1000 ? `${wait} ms` : `${Math.round(wait / 1000)} s`}`, {
        hint: `if no oci-os process is writing to it, remove ${lock}`,
      });
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    delay = Math.min(delay * 2, 200);
  }
  const mine = async (): Promise<boolean> => (await readFile(lock, 'utf8').catch(() => undefined)) === token;
  const renew = setInterval(() => {
    void mine().then((yes) => (yes ? utimes(lock, new Date(), new Date()) : undefined)).catch(() => {});
  }, LOCK_STALE_MS / 3);
  renew.unref();
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    // Only a lock that is still this one is removed (a stale takeover may have replaced it).
    if (await mine()) await unlink(lock).catch(() => {});
  }
}

/** A temporary file name that says which process wrote it, so that one left by a process that is gone can be removed. */
function ownedName(what: string): string {
  return `${what}-${ownerTag()}-${randomBytes(8).toString('hex')}`;
}

/**
 * Identifies a file as found: one replaced (another inode) or written to
 * (size, mtime) does not look the same. A layout's blob checked once is not
 * hashed again while its key stays. With `ctime`, a change that restored
 * mtime or touched only metadata counts too: an archive writer, which reads
 * the archive again when it changed, would rather read it once too often.
 */
export function fileKey(st: Stats, options: { ctime?: boolean } = {}): string {
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  return options.ctime ? `${key}:${st.ctimeMs}` : key;
}

/**
 * Removes a lock left by a holder that is gone, or held too long. The lock
 * is first renamed to a name of its own, so two waiters cannot both remove
 * it, and removed only if it is still the file that was judged stale.
 * True when the lock was gone or removed (try again at once).
 */
async function takeOverStale(lock: string): Promise<boolean> {
  let st: Stats;
  let text: string;
  try {
    const fh = await open(lock, 'r');
    try {
      st = await fh.stat();
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  // The holder's owner tag (owner.ts); older versions wrote the pid alone.
  const holder = text.trim().split(/\s+/)[0] ?? '';
  const stale = Date.now() - st.mtimeMs > LOCK_STALE_MS || !ownerAlive(holder);
  if (!stale) return false;
  const moved = `${lock}.stale-${randomBytes(8).toString('hex')}`;
  try {
    await rename(lock, moved);
  } catch {
    return true;
  }
  const same = await stat(moved).then((m) => m.ino === st.ino && m.dev === st.dev, () => false);
  if (!same) {
    // A new holder's lock was moved: put back unless yet another one took its place.
    await link(moved, lock).catch(() => {});
  }
  await unlink(moved).catch(() => {});
  return true;
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON value for a message, cut short. */
function shown(v: unknown): string {
  const s = v === undefined ? 'missing' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Descriptor keys in the order the image-spec's Go types serialize them. */
function orderDescriptor(d: Descriptor): Descriptor {
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.urls) out.urls = d.urls;
  if (d.annotations) out.annotations = d.annotations;
  if (d.data) out.data = d.data;
  if (d.platform) out.platform = d.platform;
  if (d.artifactType) out.artifactType = d.artifactType;
  return out as unknown as Descriptor;
}

/**
 * Makes the entries of a directory durable (renames into it included).
 * Where directories cannot be synced (some platforms and file systems
 * refuse it), the files themselves were synced and that has to do.
 */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
  } finally {
    await fh?.close();
  }
}
