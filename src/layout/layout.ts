/**
 * OCI image layout directory (image-spec image-layout.md) as a ContentStore.
 * Writes are atomic: every blob goes to a temporary file inside the layout,
 * is hashed while written, verified, fsynced and renamed into
 * `blobs/<alg>/<hex>`; tags are collected and `index.json` is replaced (temp +
 * rename) only in `commit()`, after every blob is in place. Other images in
 * an existing layout are kept; a tag that is set again is moved.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, unlink, writeFile, rmdir } from 'node:fs/promises';
import { makeDirs } from '../util/fs.js';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciError, fsError, isOciError } from '../errors.js';
import type { ByteSource, CommittableStore, PushOptions, StoredBlob } from '../content/store.js';
import type { Descriptor, ImageIndex } from '../oci/descriptor.js';
import { DigestStream, digestAlgorithm, digestHex, isDigest } from '../oci/digest.js';
import { Annotation, MediaType } from '../oci/mediatypes.js';
import { canonicalJson } from '../oci/json.js';

/** The oci-layout file exactly as the format's reference builder writes it. */
const OCI_LAYOUT_FILE = '{"imageLayoutVersion": "1.0.0"}\n';
const TMP_DIR = '.oci-os-tmp';

/** Options for opening a layout. */
export interface LayoutOptions {
  /** Create the directory and layout files when missing (default false). */
  create?: boolean;
  /**
   * How messages about index.json name it, when the directory is not what
   * the user named (an archive extracted to a temporary directory).
   */
  indexName?: string;
}

/** A pending change to index.json: tag → descriptor. */
interface PendingTag {
  tag: string;
  desc: Descriptor;
}

export class OciLayout implements CommittableStore {
  private readonly pending: PendingTag[] = [];
  /** Blobs this instance added (removed again by abort()). */
  private readonly added = new Set<string>();
  /** `blobs/<alg>` directories this instance created (removed again by abort() when empty). */
  private readonly addedDirs = new Set<string>();

  private constructor(readonly dir: string, private readonly indexName?: string) {}

  /** Opens (and with `create`, initializes) a layout directory. */
  static async open(dir: string, options: LayoutOptions = {}): Promise<OciLayout> {
    const layout = new OciLayout(dir, options.indexName);
    let st;
    try {
      st = await stat(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) throw fsError(err, dir, 'read');
    }
    if (st && !st.isDirectory()) {
      throw new OciError('INVALID_ARGUMENT', `${dir} is not a directory; an oci: location names a layout directory`);
    }
    if (options.create) await layout.init();
    else await layout.checkLayoutFile();
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
      throw fsError(err, this.dir, 'write');
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
    let version: unknown;
    try {
      version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      throw new OciError('INVALID_FORMAT', `${file} is not valid JSON`);
    }
    if (version !== '1.0.0') throw new OciError('UNSUPPORTED', `${file}: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
  }

  /** Path of a blob by digest. */
  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new OciError('INVALID_ARGUMENT', `invalid digest "${digest}"`);
    const alg = digest.slice(0, digest.indexOf(':'));
    return join(this.dir, 'blobs', alg, digestHex(digest));
  }

  async exists(desc: Descriptor): Promise<boolean> {
    try {
      const st = await stat(this.blobPath(desc.digest));
      return st.isFile() && st.size === desc.size;
    } catch {
      return false;
    }
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
    if (await this.exists(desc)) {
      // Content-addressed: present means identical. Drain the source so producers finish.
      if (content instanceof Readable) content.resume();
      return;
    }
    const stored = await this.writeBlob(content, { digest: desc.digest, size: desc.size }, options.verifiedSource === true);
    if (stored.digest !== desc.digest) throw new OciError('DIGEST_MISMATCH', `blob digest ${stored.digest}, expected ${desc.digest}`);
  }

  async pushStream(content: ByteSource): Promise<StoredBlob> {
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
    const tmp = join(tmpDir, `blob-${randomBytes(8).toString('hex')}`);
    // A digest that cannot be checked is refused before anything is written.
    if (expected) digestAlgorithm(expected.digest, `blob ${expected.digest}`);
    const hasher = trusted && expected ? undefined : new DigestStream(expected ? { ...expected, what: `blob ${expected.digest}` } : undefined);
    try {
      await makeDirs(tmpDir);
      const out = createWriteStream(tmp, { flags: 'wx' });
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
      const existed = await this.exists({ mediaType: MediaType.octetStream, digest, size });
      await rename(tmp, dest);
      if (!existed) this.added.add(dest);
      return { digest, size };
    } catch (err) {
      await unlink(tmp).catch(() => {});
      if (isOciError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw fsError(err, this.dir, 'write');
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
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
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
    const invalid = (what: string): OciError => new OciError('INVALID_FORMAT', `${name} ${what}`);
    const invalidEntry = (i: number, what: string): OciError => new OciError('INVALID_FORMAT', `${name}: manifests[${i}] ${what}`);
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

  /** Writes index.json with the pending tags; earlier entries with the same tags are replaced. */
  async commit(): Promise<void> {
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
        await this.writeAtomic('index.json', canonicalJson(out));
      } catch (err) {
        throw fsError(err, join(this.dir, 'index.json'), 'write');
      }
      this.pending.length = 0;
    }
    this.added.clear();
    this.addedDirs.clear();
    await rmdir(join(this.dir, TMP_DIR)).catch(() => {});
  }

  /** Forgets pending tags and removes blobs this instance added. */
  async abort(): Promise<void> {
    this.pending.length = 0;
    for (const path of this.added) await rm(path, { force: true }).catch(() => {});
    this.added.clear();
    for (const dir of this.addedDirs) await rmdir(dir).catch(() => {});
    this.addedDirs.clear();
    await rm(join(this.dir, TMP_DIR), { recursive: true, force: true }).catch(() => {});
  }

  /** Writes a small file atomically (temp + fsync + rename). */
  private async writeAtomic(name: string, data: Buffer): Promise<void> {
    const tmpDir = join(this.dir, TMP_DIR);
    await makeDirs(tmpDir);
    const tmp = join(tmpDir, `${name}-${randomBytes(8).toString('hex')}`);
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
