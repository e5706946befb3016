/**
 * On-disk storage of the embedded registry. Layout under `root`:
 *
 * ```
 * blobs/sha256/<hex>                          content, shared by every repository
 * repositories/<name>/_blobs/sha256/<hex>     blob links (empty files)
 * repositories/<name>/_manifests/sha256/<hex> manifest metadata (JSON); bytes live in blobs/
 * repositories/<name>/_tags/<tag>             the digest a tag points to
 * repositories/<name>/_referrers/sha256/<subject hex>/<hex>   referrers index (empty files)
 * uploads/<id>/                               upload sessions (data + info.json)
 * tmp/                                        temporary files, renamed into place
 * ```
 *
 * Underscore-prefixed directories cannot collide with name components,
 * which the grammar makes start with `[a-z0-9]`. Every file is written to
 * `tmp/` first, flushed to disk and renamed, so readers never see a partial
 * file, nor after a crash a name pointing at bytes that never reached the disk.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsError, OciError } from '../errors.js';
import { syncDirectory, writeFileAtomic } from '../util/fs.js';

/** What the registry remembers about a stored manifest (the bytes are a blob). */
export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  /** `artifactType`, or the config media type of an image manifest (referrers API). */
  artifactType?: string;
  /** Digest of the `subject` descriptor, when there is one. */
  subject?: string;
  annotations?: Record<string, string>;
}

function hexOf(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Filesystem-backed blob, manifest, tag and referrer storage. */
export class RegistryStorage {
  /** Per digest (and per tag), the tail of the commits of that content, run one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(readonly root: string) {}

  /**
   * Runs `fn` once every earlier commit of `digest` has finished, so that a
   * manifest put undoing itself cannot remove the bytes another request is
   * committing under the same address.
   */
  private withDigest<T>(digest: string, fn: () => Promise<T>): Promise<T> {
    return this.serially(`digest ${digest}`, fn);
  }

  /** Runs `fn` once every earlier holder of `key` has finished. */
  private async serially<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  /**
   * Runs `fn` holding tag `tag` of `name`, after `check` has accepted the
   * digest the tag holds (undefined: none): a conditional write (If-Match)
   * cannot pass its check and then lose to a write that came between.
   */
  withTag<T>(name: string, tag: string, check: (current: string | undefined) => void, fn: () => Promise<T>): Promise<T> {
    return this.serially(`tag ${name}:${tag}`, async () => {
      check(await this.resolveTag(name, tag));
      return fn();
    });
  }

  /** Creates the top-level directories. */
  async init(): Promise<void> {
    const st = await stat(this.root).catch(() => undefined);
    if (st && !st.isDirectory()) throw new OciError('INVALID_ARGUMENT', `${this.root} is not a directory`);
    try {
      for (const d of ['blobs/sha256', 'repositories', 'uploads', 'tmp']) {
        await mkdir(join(this.root, d), { recursive: true });
      }
    } catch (err) {
      throw fsError(err, this.root, 'write');
    }
  }

  /** Path of a blob's content. */
  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', hexOf(digest));
  }

  /** A fresh path under tmp/ on the same filesystem as blobs/. */
  tmpPath(): string {
    return join(this.root, 'tmp', randomUUID());
  }

  /** Directory holding upload sessions. */
  get uploadsDir(): string {
    return join(this.root, 'uploads');
  }

  private repoDir(name: string): string {
    return join(this.root, 'repositories', ...name.split('/'));
  }

  private blobLink(name: string, digest: string): string {
    return join(this.repoDir(name), '_blobs', 'sha256', hexOf(digest));
  }

  private manifestFile(name: string, digest: string): string {
    return join(this.repoDir(name), '_manifests', 'sha256', hexOf(digest));
  }

  private tagFile(name: string, tag: string): string {
    return join(this.repoDir(name), '_tags', tag);
  }

  /**
   * Where the referrers of `subject` are filed. Subjects are sha256 like
   * every digest the registry accepts (see checkDigest in routes.ts), so
   * the directory is fixed, as for blobs and manifests.
   */
  private referrersDir(name: string, subject: string): string {
    return join(this.repoDir(name), '_referrers', 'sha256', hexOf(subject));
  }

  /**
   * Writes a file atomically, creating parents (writeFileAtomic): the temp
   * file is under tmp/, on the same file system as everything it replaces.
   * On any failure the temp file is removed and `path` keeps what it had.
   */
  async writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    await writeFileAtomic(path, data, { temp: this.tmpPath(), makeParents: true });
  }

  /** Size of a stored blob, or undefined when the registry does not have it. */
  async blobSize(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Size of a blob linked into repository `name`, or undefined. */
  async repoBlobSize(name: string, digest: string): Promise<number | undefined> {
    try {
      await stat(this.blobLink(name, digest));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return this.blobSize(digest);
  }

  /** Whether the repository has any content. */
  async repoExists(name: string): Promise<boolean> {
    for (const d of ['_blobs', '_manifests', '_tags']) {
      try {
        await stat(join(this.repoDir(name), d));
        return true;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return false;
  }

  /** Links a stored blob into a repository. */
  async linkBlob(name: string, digest: string): Promise<void> {
    const link = this.blobLink(name, digest);
    await mkdir(dirname(link), { recursive: true });
    await writeFile(link, '');
  }

  /** Removes a repository's link to a blob; false when there was none. */
  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    try {
      await unlink(this.blobLink(name, digest));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Moves a verified file, already flushed to disk, to its content address
   * with one atomic rename and links it into repository `name`. When the
   * blob is already stored it is replaced by identical bytes, so concurrent
   * readers see either copy, never a partial file.
   */
  async commitBlob(tmpFile: string, name: string, digest: string): Promise<void> {
    await this.withDigest(digest, async () => {
      await rename(tmpFile, this.blobPath(digest));
      await syncDirectory(dirname(this.blobPath(digest)));
      await this.linkBlob(name, digest);
    });
  }

  /** A read stream over a blob, optionally a byte range (inclusive end). */
  openBlob(digest: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.blobPath(digest), range);
  }

  /**
   * Stores a manifest's bytes and record, links it as a blob, indexes its
   * subject and points tags at it. Either all of it is stored or, when a
   * step fails, what the earlier steps changed is undone and the error
   * thrown: a failed put leaves no blob, link, record or tag behind.
   */
  async putManifest(name: string, bytes: Uint8Array, record: ManifestRecord, tags: string[]): Promise<void> {
    // Serialized before anything is written, so a record that cannot be written stores nothing.
    const recordJson = JSON.stringify(record);
    await this.withDigest(record.digest, async () => {
      const undo: Array<() => Promise<unknown>> = [];
      try {
        if ((await this.blobSize(record.digest)) === undefined) {
          await this.writeAtomic(this.blobPath(record.digest), bytes);
          undo.push(() => rm(this.blobPath(record.digest), { force: true }));
        }
        if ((await this.repoBlobSize(name, record.digest)) === undefined) {
          await this.linkBlob(name, record.digest);
          undo.push(() => this.unlinkBlob(name, record.digest));
        }
        const manifestFile = this.manifestFile(name, record.digest);
        const previousRecord = await readFile(manifestFile).catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
        await this.writeAtomic(manifestFile, recordJson);
        undo.push(() => (previousRecord === undefined ? rm(manifestFile, { force: true }) : this.writeAtomic(manifestFile, previousRecord)));
        if (record.subject) {
          const entry = join(this.referrersDir(name, record.subject), hexOf(record.digest));
          if ((await stat(entry).catch(() => undefined)) === undefined) {
            await mkdir(dirname(entry), { recursive: true });
            await writeFile(entry, '');
            undo.push(() => rm(entry, { force: true }));
          }
        }
        for (const tag of tags) {
          const previous = await this.resolveTag(name, tag);
          await this.writeAtomic(this.tagFile(name, tag), record.digest);
          undo.push(() => (previous === undefined ? this.deleteTag(name, tag) : this.writeAtomic(this.tagFile(name, tag), previous)));
        }
      } catch (err) {
        for (const step of undo.reverse()) await step().catch(() => undefined);
        throw err;
      }
    });
  }

  /** The record of a manifest stored in `name`, or undefined. */
  async getManifest(name: string, digest: string): Promise<ManifestRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.manifestFile(name, digest), 'utf8')) as ManifestRecord;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The digest a tag points to, or undefined. */
  async resolveTag(name: string, tag: string): Promise<string | undefined> {
    try {
      return (await readFile(this.tagFile(name, tag), 'utf8')).trim();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Removes a tag; false when it did not exist. */
  async deleteTag(name: string, tag: string): Promise<boolean> {
    try {
      await unlink(this.tagFile(name, tag));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Removes a manifest, every tag pointing at it and its referrers entry; false when unknown. */
  async deleteManifest(name: string, digest: string): Promise<boolean> {
    const record = await this.getManifest(name, digest);
    if (!record) return false;
    for (const tag of (await this.listTags(name)) ?? []) {
      if ((await this.resolveTag(name, tag)) === digest) await this.deleteTag(name, tag);
    }
    if (record.subject) await rm(join(this.referrersDir(name, record.subject), hexOf(digest)), { force: true });
    await rm(this.manifestFile(name, digest), { force: true });
    return true;
  }

  /** Tags of a repository in lexical order, or undefined when the repository is unknown. */
  async listTags(name: string): Promise<string[] | undefined> {
    try {
      return (await readdir(join(this.repoDir(name), '_tags'))).sort();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return (await this.repoExists(name)) ? [] : undefined;
    }
  }

  /** Records of the manifests in `name` whose subject is `digest`, ordered by digest. */
  async listReferrers(name: string, digest: string): Promise<ManifestRecord[]> {
    let entries: string[];
    try {
      entries = (await readdir(this.referrersDir(name, digest))).sort();
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const out: ManifestRecord[] = [];
    for (const hex of entries) {
      const record = await this.getManifest(name, `sha256:${hex}`);
      // Checked again: versions that accepted subjects of any algorithm filed them here by their hex alone.
      if (record && record.subject === digest) out.push(record);
    }
    return out;
  }
}
