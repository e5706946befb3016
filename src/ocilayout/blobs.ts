/**
 * The blobs of a layout (`blobs/<alg>/<hex>`) as one writer sees them:
 * written to a temporary file while hashed, verified, fsynced and renamed
 * into place; read back through a check of digest and size. It remembers
 * what this writer added (which an aborted write may remove again) and
 * which blobs it has already hashed.
 */

import { createHash } from 'node:crypto';
import type { ReadStream, Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteSource, StoredBlob } from '../content/store.js';
import { fsError, isOciError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { DigestStream, digestAlgorithm, digestHex, isDigest } from '../oci/digest.js';
import { fileKey, makeDirs } from '../util/fs.js';
import { BlobFile } from './blob-file.js';
import { ownedName, TMP_DIR } from './temporaries.js';

export class LayoutBlobs {
  /** Blobs this writer added, digest → path (removed again by an abort when no one else may use them). */
  readonly added = new Map<string, string>();
  /** `blobs/<alg>` directories this writer created (removed again by an abort when empty). */
  readonly addedDirs = new Set<string>();
  /** Temporary files being written by this writer: an abort removes these and no others. */
  private readonly temps = new Set<string>();
  /**
   * Blobs whose bytes were hashed (or written) by this writer, by digest,
   * with the file they were found in: a blob is hashed at most once while it
   * stays the same file.
   */
  private readonly checked = new Map<string, { file: string; ok: Promise<boolean> }>();

  /** `shownAs`: how failed writes name the layout (see LayoutOptions.shownAs). */
  constructor(
    private readonly dir: string,
    private readonly shownAs: string,
  ) {}

  /** Path of a blob by digest. */
  path(digest: string): string {
    if (!isDigest(digest)) throw new OciError('INVALID_ARGUMENT', `invalid digest "${digest}"`);
    const alg = digest.slice(0, digest.indexOf(':'));
    return join(this.dir, 'blobs', alg, digestHex(digest));
  }

  /**
   * Whether the blob is in place with the right bytes. Callers skip writing
   * a blob that exists, so its size is not enough: a damaged file of the
   * same size would end up tagged. The file is hashed (once per writer
   * while it stays the same file); a mismatch counts as absent, and write()
   * then replaces it atomically.
   */
  async exists(desc: Descriptor): Promise<boolean> {
    let path: string;
    let st: Stats;
    try {
      path = this.path(desc.digest);
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

  /** The blob's bytes, checked against its digest and size as they are read. */
  async fetch(desc: Descriptor): Promise<Readable> {
    const path = this.path(desc.digest);
    const verify = new DigestStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}` });
    // A small blob (a manifest, a config) in one read of its size, not of 1 MiB.
    const small = Number.isSafeInteger(desc.size) && desc.size >= 0 && desc.size < 1 << 20;
    const src = await this.readStream(desc, path, { highWaterMark: small ? desc.size + 1 : 1 << 20 });
    src.on('error', (err) => verify.destroy(fsError(err, path, 'read')));
    // A reader that stops early (a check that failed, a destination that did) destroys verify: the file closes with it.
    verify.once('close', () => src.destroy());
    return src.pipe(verify);
  }

  /** The bytes of a small blob, unchecked, read at once: its size and one more byte asked for (see WholeReader). */
  async readWhole(desc: Descriptor): Promise<Buffer> {
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) throw new OciError('SIZE_MISMATCH', `blob ${desc.digest}: ${desc.size} is not a size`);
    const path = this.path(desc.digest);
    const file = await this.openBlob(desc, path);
    try {
      const bytes = Buffer.allocUnsafe(desc.size + 1);
      let n = 0;
      for (let got = -1; got !== 0 && n < bytes.length; n += got) {
        ({ bytesRead: got } = await file.read(bytes, n, bytes.length - n, n));
      }
      return bytes.subarray(0, n);
    } catch (err) {
      throw fsError(err, path, 'read');
    } finally {
      await file.close().catch(() => {});
    }
  }

  /** The blob's bytes from `offset` on, unchecked (the caller checks the whole). */
  async readFrom(desc: Descriptor, offset: number): Promise<Readable> {
    // Refused before the file is opened: a read stream that refuses its options leaves its file handle unclosable.
    if (!Number.isSafeInteger(offset) || offset < 0) throw new OciError('INTERNAL', `blob ${desc.digest}: ${offset} is not an offset to read from`);
    return this.readStream(desc, this.path(desc.digest), { start: offset, highWaterMark: 1 << 20 });
  }

  /** A stream of the blob's file, which closes the file as it ends; NOT_FOUND when the layout lacks it. */
  private async readStream(desc: Descriptor, path: string, options: { start?: number; highWaterMark: number }): Promise<ReadStream> {
    return (await this.openBlob(desc, path)).createReadStream(options);
  }

  /** The blob's file, open for reading; NOT_FOUND when the layout lacks it. */
  private async openBlob(desc: Descriptor, path: string): Promise<FileHandle> {
    try {
      return await open(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new OciError('NOT_FOUND', `blob ${desc.digest} is not in layout ${this.dir}`);
      throw fsError(err, path, 'read');
    }
  }

  /**
   * Writes a blob to a temporary file while hashing it, verifies it, then
   * renames it into place. A `trusted` source (one that fails unless its
   * bytes match `expected`, PushOptions.verifiedSource) is not hashed again;
   * its size is still checked.
   */
  async write(content: ByteSource, expected?: { digest: string; size: number }, trusted = false): Promise<StoredBlob> {
    const tmpDir = join(this.dir, TMP_DIR);
    const tmp = join(tmpDir, ownedName('blob'));
    const what = expected ? `blob ${expected.digest}` : 'blob';
    // A digest that cannot be checked is refused before anything is written.
    const algorithm = expected ? digestAlgorithm(expected.digest, what) : 'sha256';
    const hash = trusted && expected ? undefined : createHash(algorithm);
    this.temps.add(tmp);
    let file: BlobFile | undefined;
    try {
      await makeDirs(tmpDir);
      file = new BlobFile(await open(tmp, 'wx'));
      let size = 0;
      await file.writeAll(content, (chunk) => {
        size += chunk.length;
        if (expected && size > expected.size) throw new OciError('SIZE_MISMATCH', `${what}: more than the expected ${expected.size} bytes`);
        hash?.update(chunk);
      });
      await file.close(true);
      const digest = hash ? `${algorithm}:${hash.digest('hex')}` : expected!.digest;
      if (expected && size !== expected.size) throw new OciError('SIZE_MISMATCH', `${what}: got ${size} bytes, expected ${expected.size}`);
      if (expected && digest !== expected.digest) throw new OciError('DIGEST_MISMATCH', `${what}: content has digest ${digest}, expected ${expected.digest}`);
      const dest = this.path(digest);
      await this.algorithmDir(dirname(dest));
      // Any file already there (even a damaged one now replaced) was not added by this writer, so an abort leaves it.
      const existed = await lstat(dest).then(
        () => true,
        () => false,
      );
      await rename(tmp, dest);
      this.temps.delete(tmp);
      if (!existed) this.added.set(digest, dest);
      const st = await stat(dest).catch(() => undefined);
      if (st) this.checked.set(digest, { file: fileKey(st), ok: Promise.resolve(true) });
      return { digest, size };
    } catch (err) {
      this.temps.delete(tmp);
      // Closed (after the write under way, if any) before it is removed.
      await file?.close(false).catch(() => {});
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

  /** Removes the temporary files of writes still under way (an abort). */
  async removeTemporaries(): Promise<void> {
    for (const tmp of this.temps) await unlink(tmp).catch(() => {});
    this.temps.clear();
  }

  /** Stops remembering what was added: committed, or left to stay. */
  forgetAdded(): void {
    this.added.clear();
    this.addedDirs.clear();
  }
}
