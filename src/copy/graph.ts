/**
 * Graph copy between any two ContentStores (layout, archive, registry):
 * a manifest with its config and layers, an index with every manifest it
 * lists (recursively), artifacts of any type — all copied verbatim, so every
 * digest stays the same. `subject` is not followed (a referrer is copied on
 * its own). Children are stored before their parents and the tags last, so
 * a tag never points at something incomplete; a registry stores the root by
 * its first tag's PUT.
 *
 * Blobs already at the destination are skipped; between two repositories
 * of the same registry blobs are mounted (distribution-spec "Mounting a
 * blob from another repository"); otherwise a blob streams from source to
 * destination with no temporary copy, hashed on both sides. (A registry
 * source resumes a broken download by itself.)
 */
import { Readable } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import { isTaggingPusher, pushManifestTagged, pushReported } from '../content/capabilities.js';
import type { ContentStore } from '../content/store.js';
import { InterruptedError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { isIndexMediaType, isManifestMediaType } from '../oci/mediatypes.js';
import type { ProgressSink } from '../progress/events.js';
import { BlobCopier, type CopiedContent } from './blob.js';
import { childrenOf, DescriptorSizes, defaultMaxManifestBytes, manifestArtifactType, readManifestBytes } from './manifest.js';

export type { CopiedContent } from './blob.js';
export { childrenOf, DescriptorSizes, defaultMaxManifestBytes, manifestArtifactType, readManifestBytes } from './manifest.js';

/** Options of {@link copyGraph}. Zero values mean the defaults. */
export interface CopyOptions {
  /** Blobs (and manifest reads and writes) transferred at once (default 4). */
  jobs?: number;
  /** Tags to set at the destination once everything is stored. */
  tags?: string[];
  /** Largest manifest accepted (default 4 MiB, oci/limits.ts). */
  maxManifestBytes?: number;
  signal?: AbortSignal;
  /**
   * Receives the copy's progress: blob-start, blob-progress and blob-done
   * for each blob transferred (blob-done alone for one already there), a
   * `manifest` event for each manifest or index at the destination.
   */
  progress?: ProgressSink;
  /** Called after each tag is set. */
  onTag?: (tag: string) => void;
  /** Called with a manifest's bytes after they were read and verified (e.g. to check an OS image). */
  onManifest?: (desc: Descriptor, bytes: Buffer) => void | Promise<void>;
  /**
   * The `artifactType` the tags give the root (a layout lists it in
   * index.json), from the root's bytes, where a format has its own rule
   * (tasks/copy-graph.ts passes the formats' rules). By default the one the
   * manifest names.
   */
  indexArtifactType?: (bytes: Buffer) => string | undefined;
}

/** What {@link copyGraph} did. */
export interface CopyResult {
  root: Descriptor;
  /** Every blob and manifest, in completion order (children before parents). */
  contents: CopiedContent[];
  /** Tags set, in order. */
  tags: string[];
  /** Bytes read from the source for transferred blobs. */
  bytesTransferred: number;
}

/**
 * Copies the graph under `root` from `src` to `dst`, then sets `options.tags`.
 * Local destinations still need their commit() afterwards.
 */
export async function copyGraph(src: ContentStore, dst: ContentStore, root: Descriptor, options: CopyOptions = {}): Promise<CopyResult> {
  if (!isManifestMediaType(root.mediaType) && !isIndexMediaType(root.mediaType)) {
    throw new OciError('UNSUPPORTED', `${root.digest} has media type ${root.mediaType}, which is neither an image manifest nor an index`);
  }
  return new GraphCopy(src, dst, root, options).run();
}

/**
 * One run of {@link copyGraph}: the walk (each digest once, children before
 * parents), one blob, one manifest, and the tags.
 *
 * After the first failure nothing new starts, the transfers under way are
 * stopped, and every one is awaited before the copy rejects, so a caller's
 * abort() cleans up after all of them. Stopped, a download from a registry
 * that hangs (or a long one) does not hold back the failure that ends the
 * copy anyway (no space left for the blob next to it).
 */
class GraphCopy {
  private readonly limit: LimitFunction;
  private readonly cap: number;
  private readonly contents: CopiedContent[] = [];
  private readonly started = new Map<string, Promise<void>>();
  private readonly sizes = new DescriptorSizes();
  private readonly stopAll = new AbortController();
  private readonly blobs: BlobCopier;
  private firstError: unknown;
  /** The descriptor tags point at (with the artifactType an index gives it). */
  private rootTagged: Descriptor;
  /**
   * The root's bytes, when its first tag stores it (a destination that is a
   * TaggingPusher: one request instead of a HEAD and two PUTs).
   */
  private rootByTag: Buffer | undefined;

  constructor(
    private readonly src: ContentStore,
    private readonly dst: ContentStore,
    private readonly root: Descriptor,
    private readonly options: CopyOptions,
  ) {
    this.limit = pLimit(options.jobs ?? 4);
    this.cap = options.maxManifestBytes ?? defaultMaxManifestBytes;
    this.rootTagged = { mediaType: root.mediaType, digest: root.digest, size: root.size };
    const signal = options.signal ? AbortSignal.any([options.signal, this.stopAll.signal]) : this.stopAll.signal;
    this.blobs = new BlobCopier(src, dst, {
      signal,
      interrupted: () => new InterruptedError('copy interrupted; no tag was set'),
      progress: options.progress,
    });
  }

  async run(): Promise<CopyResult> {
    try {
      await this.visit(this.root);
    } catch (err) {
      throw this.firstError ?? err;
    }
    const tags = await this.tagRoot();
    return { root: this.root, contents: this.contents, tags, bytesTransferred: this.blobs.bytesTransferred };
  }

  /** Each digest is copied once, however often the graph references it (always with the same size). */
  private visit(desc: Descriptor, blob = false, from = 'the root descriptor'): Promise<void> {
    try {
      this.sizes.add(desc, from);
    } catch (err) {
      this.fail(err);
      return Promise.reject(err);
    }
    let p = this.started.get(desc.digest);
    if (!p) {
      p = (blob ? this.copyBlob(desc) : this.copyManifest(desc)).catch((err: unknown) => {
        this.fail(err);
        throw err;
      });
      this.started.set(desc.digest, p);
    }
    return p;
  }

  private copyBlob(desc: Descriptor): Promise<void> {
    return this.limit(async () => {
      this.checkNotStopped();
      this.done(await this.blobs.copy(desc));
    });
  }

  /**
   * A manifest or index: read, its children copied, then stored itself.
   * Manifest reads and writes take a slot of the same limit as blobs: an
   * index of hundreds of platforms would otherwise open a request per entry
   * at once. Only the requests hold a slot, never the wait for the children
   * (which need slots themselves), so the walk cannot starve itself.
   */
  private async copyManifest(desc: Descriptor): Promise<void> {
    const bytes = await this.limit(() => {
      this.checkNotStopped();
      return readManifestBytes(this.src, desc, this.cap);
    });
    await this.options.onManifest?.(desc, bytes);
    if (desc.digest === this.root.digest) {
      const artifactType = (this.options.indexArtifactType ?? manifestArtifactType)(bytes);
      if (artifactType) this.rootTagged = { ...this.rootTagged, artifactType };
    }
    const { manifests, blobs } = childrenOf(desc, bytes);
    const from = `manifest ${desc.digest}`;
    const settled = await Promise.allSettled([...manifests.map((m) => this.visit(m, false, from)), ...blobs.map((b) => this.visit(b, true, from))]);
    if (settled.some((r) => r.status === 'rejected')) throw this.firstError;
    if (desc.digest === this.root.digest && this.options.tags?.length && isTaggingPusher(this.dst)) this.rootByTag = bytes;
    else await this.limit(() => this.storeManifest(desc, bytes));
  }

  private async storeManifest(desc: Descriptor, bytes: Buffer): Promise<void> {
    this.checkNotStopped();
    const report = { digest: desc.digest, size: desc.size, mediaType: desc.mediaType, kind: 'manifest' as const };
    if (await this.dst.exists(desc)) {
      this.done({ ...report, status: 'exists' });
      return;
    }
    const r = await pushReported(this.dst, desc, Readable.from([bytes]));
    // A graph copy reports content stored locally as uploaded too (what its reports have always said).
    this.done({ ...report, status: 'uploaded', uploadedBytes: r.status === 'written' ? undefined : r.uploadedBytes });
  }

  /** Sets the tags, one after the other, once everything is stored (the root too, by the first where it was left to it). */
  private async tagRoot(): Promise<string[]> {
    const tags: string[] = [];
    for (const tag of this.options.tags ?? []) {
      if (tags.length > 0 && this.options.signal?.aborted) throw new InterruptedError(`copy interrupted; only ${tags.join(', ')} was tagged`);
      this.checkNotStopped();
      const bytes = this.rootByTag;
      if (bytes) {
        await pushManifestTagged(this.dst, this.rootTagged, bytes, [tag]);
        this.rootByTag = undefined;
        const { digest, size, mediaType } = this.root;
        this.done({ digest, size, mediaType, kind: 'manifest', status: 'uploaded', uploadedBytes: bytes.length });
      } else await this.dst.tag(this.rootTagged, tag);
      tags.push(tag);
      this.options.onTag?.(tag);
    }
    return tags;
  }

  private done(r: CopiedContent): void {
    this.contents.push(r);
    this.options.progress?.(
      r.kind === 'manifest'
        ? { type: 'manifest', digest: r.digest, mediaType: r.mediaType, size: r.size }
        : {
            type: 'blob-done',
            id: r.digest,
            name: r.digest.slice(7, 19),
            digest: r.digest,
            size: r.size,
            mediaType: r.mediaType,
            status: r.status,
            uploadedBytes: r.uploadedBytes ?? 0,
          },
    );
  }

  private fail(err: unknown): void {
    this.firstError ??= err;
    this.stopAll.abort();
  }

  private checkNotStopped(): void {
    if (this.options.signal?.aborted) throw new InterruptedError('copy interrupted; no tag was set');
    if (this.firstError !== undefined) throw new OciError('ABORTED', 'copy stopped after an earlier failure');
  }
}
