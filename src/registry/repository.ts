/**
 * One repository of a registry as a ContentStore (distribution-spec
 * "Pulling", "Pushing", "Content discovery" for tags): blobs and manifests
 * are told apart by media type, blobs go through {@link ChunkedUpload},
 * manifests are PUT with their exact bytes and the registry's digest is
 * checked against ours. Every blob push is recorded for reporting.
 */
import { createHash } from 'node:crypto';
import { pipeline, type Readable } from 'node:stream';
import { type BlobMounter, isStoppable, type ManifestReader, type ReportingPusher, type TaggingPusher } from '../content/capabilities.js';
import { checkBytes } from '../content/fetch-all.js';
import type { ByteSource, ContentStore, StoredBlob } from '../content/store.js';
import { OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { type Digest, DigestStream, digestAlgorithm, isDigest, sha256Digest } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { isRegistryManifestMediaType, MediaType } from '../oci/mediatypes.js';
import type { BlobStatus } from '../progress/events.js';
import { mergeScopes, pullScope, pushScope, type Scope } from './auth/token-cache.js';
import { fetchBlobResumable } from './fetch-resume.js';
import type { RegistryHttp } from './http.js';
import { formatReference, type Reference } from './reference.js';
import { ChunkedUpload } from './upload.js';
import type { ChunkedUploadOptions, UploadResult } from './upload-parts.js';

/** Largest manifest read or pushed (oci/limits.ts). */
export const maxManifestBytes = MAX_MANIFEST_BYTES;

/** A tag's manifest as {@link RegistryRepository.fetchTagged} read it. */
export interface TaggedManifest {
  bytes: Buffer;
  contentType?: string;
  etag?: string;
}

/** `Accept` for manifest requests: OCI and Docker manifests and indexes. */
export const manifestAccept = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList].join(', ');

/** What happened to one blob, for reporting. */
export interface BlobPushResult {
  digest: string;
  size: number;
  mediaType?: string;
  /** `uploaded` (bytes went over the wire), `exists` (HEAD found it), `mounted` (cross-repository mount). */
  status: BlobStatus;
  /** Bytes sent for this blob, re-sent ones included; 0 unless uploaded. */
  uploadedBytes: number;
  /** Details of the upload when there was one. */
  upload?: UploadResult;
}

/** Per-push options. */
export interface BlobPushOptions extends Pick<ChunkedUploadOptions, 'chunkSize' | 'reopen' | 'readAt' | 'signal' | 'onProgress'> {
  /** Repositories on the same registry to try to mount the blob from first. */
  mountFrom?: string | string[];
  /** Skip the HEAD request (the caller knows the blob is missing). */
  skipExistsCheck?: boolean;
}

/** Defaults a repository applies to every upload. */
export interface RepositoryDefaults {
  chunkSize?: number;
  maxChunkSize?: number;
}

/** Options of one repository object. */
export interface RepositoryOptions extends RepositoryDefaults {
  /** Cancels every request of this repository that carries no signal of its own (see RegistryHttp.withSignal). */
  signal?: AbortSignal;
}

/** Consumes nothing more of a source and releases it: destroyed where it can be (a stream, a StoppableSource), else returned. */
async function discard(content: ByteSource): Promise<void> {
  if (isStoppable(content)) {
    content.destroy();
    return;
  }
  const it = (content as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  await it.return?.().catch(() => undefined);
}

/** Reads a small source into memory, failing past `cap` bytes. */
async function readAll(content: ByteSource, cap: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of content as AsyncIterable<Uint8Array>) {
    n += c.length;
    if (n > cap) {
      await discard(content);
      throw new OciError('SIZE_EXCEEDS_LIMIT', `${what} is larger than ${cap} bytes`);
    }
    parts.push(Buffer.from(c));
  }
  return Buffer.concat(parts, n);
}

/** A manifest resolve() asks for (see RegistryRepository.askedManifest). */
interface AskedManifest {
  reference: string;
  url: string;
  /** The digest the reference names, if it names one. */
  wanted?: string;
  /** The reference as the user wrote it, for messages. */
  named: string;
  mismatch: (answered: string, how: string) => OciError;
}

/** Whether a descriptor names a manifest (kept under `/manifests/`) rather than a blob. */
function isManifestDescriptor(desc: { mediaType?: string }): boolean {
  return isRegistryManifestMediaType(desc.mediaType);
}

/**
 * A repository on a registry, implementing {@link ContentStore} and the
 * capabilities of content/capabilities.ts: pushes say what they did,
 * blobs mount between repositories of one registry, manifests are read
 * (and kept) whole.
 */
export class RegistryRepository implements ContentStore, ReportingPusher, BlobMounter, ManifestReader, TaggingPusher {
  /** Repository path, e.g. `library/alpine`. */
  readonly name: string;
  /** Every blob pushed through this object, in completion order. */
  readonly results: BlobPushResult[] = [];
  /**
   * Upload sessions a failed or interrupted push could not cancel (the
   * registry refused the DELETE, e.g. while it still took in the request
   * that was cut off); the registry keeps them until it expires them.
   */
  uncancelledUploads = 0;
  private readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  private readonly pull: Scope[];
  private readonly push_: Scope[];

  readonly http: RegistryHttp;

  constructor(
    http: RegistryHttp,
    readonly reference: Reference,
    private readonly defaults: RepositoryOptions = {},
  ) {
    this.http = http.withSignal(defaults.signal);
    this.name = reference.repository;
    this.pull = [pullScope(this.name)];
    this.push_ = [pushScope(this.name)];
  }

  private what(desc: { digest: string }): string {
    return `${this.reference.registry}/${this.name}@${desc.digest}`;
  }

  /** HEAD the blob or manifest a descriptor names. */
  async exists(desc: Descriptor): Promise<boolean> {
    const kind = isManifestDescriptor(desc) ? 'manifests' : 'blobs';
    const res = await this.http.send({
      method: 'HEAD',
      url: `/v2/${this.name}/${kind}/${desc.digest}`,
      scopes: this.pull,
      headers: kind === 'manifests' ? { accept: manifestAccept } : undefined,
    });
    await res.body.dump().catch(() => undefined);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.http.error(res, 'HEAD');
  }

  /**
   * GETs content, verifying digest and size as it streams (redirects to
   * other hosts get no credentials). A blob download that breaks off goes
   * on with `Range` from where it stopped (fetch-resume.ts), for every
   * caller.
   */
  async fetch(desc: Descriptor, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const manifest = isManifestDescriptor(desc);
    if (!manifest) return fetchBlobResumable(this, desc, { signal: options.signal });
    const res = await this.http.send({
      method: 'GET',
      url: `/v2/${this.name}/manifests/${desc.digest}`,
      scopes: this.pull,
      signal: options.signal,
      headers: { accept: [desc.mediaType, manifestAccept].join(', ') },
    });
    if (res.status !== 200) {
      const err = await this.http.error(res, 'GET');
      if (res.status === 404) throw new OciError('NOT_FOUND', `${this.what(desc)} not found`, { cause: err });
      throw err;
    }
    const size = Number.isInteger(desc.size) && desc.size >= 0 ? desc.size : undefined;
    const verify = new DigestStream({ digest: desc.digest, size, what: this.what(desc) });
    pipeline(res.body, verify, () => undefined);
    return verify;
  }

  /** The name of `src` when it is another repository of the same registry (so a mount can work). */
  mountSourceFor(src: ContentStore): string | undefined {
    return src instanceof RegistryRepository && src.reference.apiHost === this.reference.apiHost && src.name !== this.name ? src.name : undefined;
  }

  /** The exact bytes of a manifest, verified. */
  async fetchManifestBytes(desc: { digest: string; mediaType?: string; size?: number }): Promise<Buffer> {
    const cached = this.manifests.get(desc.digest);
    if (cached) return cached.bytes;
    const mediaType = desc.mediaType ?? MediaType.ociManifest;
    const stream = await this.fetch({ mediaType, digest: desc.digest, size: desc.size ?? -1 } as Descriptor);
    const bytes = await readAll(stream, maxManifestBytes, this.what(desc));
    // Verified by fetch() as read: kept, so that a pull that checks an OS image's manifest before
    // copying it, then copies it, then tags it, asks the registry once rather than three times.
    this.manifests.set(desc.digest, { bytes, mediaType });
    return bytes;
  }

  /** ContentStore push: manifests by their digest, blobs by upload (skipped when present). */
  async push(desc: Descriptor, content: ByteSource): Promise<void> {
    await this.pushContent(desc, content);
  }

  /**
   * Pushes content whose descriptor is known. Manifests go to
   * `/manifests/<digest>`; blobs are HEADed first, then mounted or uploaded.
   */
  async pushContent(desc: Descriptor, content: ByteSource, options: BlobPushOptions = {}): Promise<BlobPushResult> {
    if (isManifestDescriptor(desc)) {
      const bytes = checkBytes(desc, await readAll(content, maxManifestBytes, this.what(desc)), this.what(desc));
      await this.putManifest(bytes, desc.mediaType, desc.digest);
      return { digest: desc.digest, size: bytes.length, mediaType: desc.mediaType, status: 'uploaded', uploadedBytes: bytes.length };
    }
    if (!options.skipExistsCheck && (await this.exists(desc))) {
      await discard(content);
      return this.record({ digest: desc.digest, size: desc.size, mediaType: desc.mediaType, status: 'exists', uploadedBytes: 0 });
    }
    let session: ChunkedUploadOptions['session'];
    for (const from of [options.mountFrom ?? []].flat()) {
      const m = await this.tryMount(desc.digest, from, options.signal);
      if (m === true) {
        await discard(content);
        return this.record({ digest: desc.digest, size: desc.size, mediaType: desc.mediaType, status: 'mounted', uploadedBytes: 0 });
      }
      if (m && !session) session = m;
    }
    const upload = new ChunkedUpload(this.http, this.name, content, {
      ...this.uploadDefaults(options),
      session,
      expected: { digest: desc.digest, size: desc.size },
      what: this.what(desc),
    });
    const r = await upload.run();
    return this.record({ digest: r.digest, size: r.size, mediaType: desc.mediaType, status: 'uploaded', uploadedBytes: r.uploadedBytes, upload: r });
  }

  /** ContentStore pushStream: uploads a blob whose digest is known only at the end. */
  async pushStream(content: ByteSource, options: { mediaType: string } & BlobPushOptions): Promise<StoredBlob> {
    const r = await this.uploadStream(content, options);
    return { digest: r.digest, size: r.size, uploadedBytes: r.uploadedBytes, status: 'uploaded' };
  }

  /** Like {@link pushStream}, returning the full per-blob result. */
  async uploadStream(content: ByteSource, options: { mediaType?: string } & BlobPushOptions = {}): Promise<BlobPushResult> {
    const upload = new ChunkedUpload(this.http, this.name, content, {
      ...this.uploadDefaults(options),
      what: `blob for ${this.reference.registry}/${this.name}`,
    });
    const r = await upload.run();
    return this.record({ digest: r.digest, size: r.size, mediaType: options.mediaType, status: 'uploaded', uploadedBytes: r.uploadedBytes, upload: r });
  }

  private uploadDefaults(o: BlobPushOptions): ChunkedUploadOptions {
    return {
      chunkSize: o.chunkSize ?? this.defaults.chunkSize,
      maxChunkSize: this.defaults.maxChunkSize,
      // The repository's signal too: an upload's own abort handling (the chunk on the wire let finish) keys on it.
      reopen: o.reopen,
      readAt: o.readAt,
      signal: o.signal ?? this.defaults.signal,
      onProgress: o.onProgress,
      onNotCancelled: () => this.uncancelledUploads++,
    };
  }

  private record(r: BlobPushResult): BlobPushResult {
    this.results.push(r);
    return r;
  }

  /**
   * Cross-repository mount: true when mounted (201). A 202 session is
   * returned for the caller to upload into; {@link mount} cancels it instead.
   */
  private async tryMount(digest: string, from: string, signal?: AbortSignal): Promise<true | { location: URL; minChunkLength?: number } | false> {
    const scopes = mergeScopes(this.push_, [pullScope(from)]);
    const q = new URLSearchParams({ mount: digest, from });
    const res = await this.http.send({ method: 'POST', url: `/v2/${this.name}/blobs/uploads/?${q}`, scopes, signal });
    if (res.status === 201) {
      await res.body.dump().catch(() => undefined);
      return true;
    }
    if (res.status === 202) {
      const location = this.http.resolveLocation(res);
      const min = Number(res.header('oci-chunk-min-length'));
      await res.body.dump().catch(() => undefined);
      return location ? { location, minChunkLength: min > 0 ? min : undefined } : false;
    }
    await res.body.dump().catch(() => undefined);
    return false; // mounting is an optimisation: any refusal means "upload it"
  }

  /** Mounts a blob from another repository of the same registry; false when the registry did not. */
  async mount(desc: { digest: string; size?: number; mediaType?: string }, from: string): Promise<boolean> {
    const m = await this.tryMount(desc.digest, from);
    if (m === true) {
      this.record({ digest: desc.digest, size: desc.size ?? 0, mediaType: desc.mediaType, status: 'mounted', uploadedBytes: 0 });
      return true;
    }
    if (m) {
      const res = await this.http.send({ method: 'DELETE', url: m.location, scopes: this.push_, retry: false }).catch(() => undefined);
      await res?.body.dump().catch(() => undefined);
    }
    return false;
  }

  /**
   * PUTs a manifest's exact bytes under a tag or digest and checks that the
   * registry's `Docker-Content-Digest` equals our sha256.
   */
  async putManifest(bytes: Buffer, mediaType: string, reference: string): Promise<Descriptor> {
    const digest = sha256Digest(bytes);
    await this.sendManifest(bytes, digest, mediaType, reference);
    return { mediaType, digest, size: bytes.length };
  }

  /** The PUT of {@link putManifest}; returns the `Docker-Content-Digest` the registry answered, if any. */
  private async sendManifest(bytes: Buffer, digest: string, mediaType: string, reference: string): Promise<string | undefined> {
    const res = await this.http.send({
      method: 'PUT',
      url: `/v2/${this.name}/manifests/${reference}`,
      body: bytes,
      scopes: this.push_,
      headers: { 'content-type': mediaType },
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await this.http.error(res, 'PUT');
    const echoed = res.header('docker-content-digest');
    await res.body.dump().catch(() => undefined);
    if (echoed && echoed !== digest) {
      throw new OciError(
        'DIGEST_MISMATCH',
        `${this.reference.registry}/${this.name}:${reference}: registry stored the manifest as ${echoed}, expected ${digest}`,
      );
    }
    this.manifests.set(digest, { bytes, mediaType });
    return echoed;
  }

  /**
   * The descriptor of the manifest a tag or digest names. A digest is held
   * to every answer (as oras-go does): a registry that answers another
   * `Docker-Content-Digest`, or content that hashes to another digest, is
   * refused with DIGEST_MISMATCH, so no caller ever acts on (pulls, signs,
   * lists referrers of) a manifest other than the one the user named.
   *
   * `read`: the caller reads the manifest next (a pull, a copy, inspect),
   * so it is fetched at once and kept, one round trip instead of a HEAD and
   * then a GET. Without it a HEAD answers, which registries that count pulls
   * (Docker Hub) do not count.
   */
  async resolve(reference: string, options: { read?: boolean } = {}): Promise<Descriptor> {
    const asked = this.askedManifest(reference);
    return (!options.read && (await this.headManifest(asked))) || this.getManifest(asked);
  }

  /** What resolve() asks for: the URL, the digest the reference names (if it does), and how to refuse another. */
  private askedManifest(reference: string): AskedManifest {
    const wanted = isDigest(reference) ? reference : undefined;
    const named = formatReference({ ...this.reference, ...(wanted ? { tag: undefined, digest: wanted } : { tag: reference, digest: undefined }) });
    return {
      reference,
      url: `/v2/${this.name}/manifests/${reference}`,
      wanted,
      named,
      mismatch: (answered, how) =>
        new OciError('DIGEST_MISMATCH', `${named}: the registry ${how} ${answered}, not the digest the reference names`, {
          hint: 'the registry, or something between it and oci-os, is answering for other content',
        }),
    };
  }

  /** The descriptor a HEAD answers with; undefined when its headers do not make one (then a GET must). */
  private async headManifest({ url, named, wanted, mismatch }: AskedManifest): Promise<Descriptor | undefined> {
    const head = await this.http.send({ method: 'HEAD', url, scopes: this.pull, headers: { accept: manifestAccept } });
    await head.body.dump().catch(() => undefined);
    if (head.status === 404) throw new OciError('NOT_FOUND', `${named} not found`);
    const digest = head.header('docker-content-digest');
    if (head.status === 200 && wanted && digest && digest !== wanted) throw mismatch(digest, 'answered with manifest');
    const mediaType = head.header('content-type')?.split(';')[0]?.trim();
    const size = Number(head.header('content-length'));
    return head.status === 200 && digest && mediaType && Number.isFinite(size) && size > 0 ? { mediaType, digest, size } : undefined;
  }

  /** The manifest, fetched, held to the digest asked for, and kept for the reads that follow. */
  private async getManifest({ reference, url, named, wanted, mismatch }: AskedManifest): Promise<Descriptor> {
    const res = await this.http.send({ method: 'GET', url, scopes: this.pull, headers: { accept: manifestAccept } });
    if (res.status === 404) {
      await res.body.dump().catch(() => undefined);
      throw new OciError('NOT_FOUND', `${named} not found`);
    }
    if (res.status !== 200) throw await this.http.error(res, 'GET');
    const echoed = res.header('docker-content-digest');
    if (wanted && echoed && echoed !== wanted) {
      await res.body.dump().catch(() => undefined);
      throw mismatch(echoed, 'answered with manifest');
    }
    const bytes = await readAll(res.body, maxManifestBytes, `manifest ${reference}`);
    // The content is hashed with the named digest's algorithm (sha256 for a tag): a sha512 reference is checked as sha512.
    const algorithm = wanted ? digestAlgorithm(wanted, named) : 'sha256';
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (wanted && actual !== wanted) throw mismatch(actual, 'sent a manifest whose content has digest');
    const type = res.header('content-type')?.split(';')[0]?.trim() || (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType;
    if (!type) throw new OciError('INVALID_FORMAT', `manifest ${reference} has no media type`);
    this.manifests.set(actual, { bytes, mediaType: type });
    return { mediaType: type, digest: actual as Digest, size: bytes.length };
  }

  /**
   * What a tag holds now, for a read-modify-write of it (an index several
   * writers merge into, the referrers fallback index): the bytes, their
   * content type and the ETag a conditional write (`If-Match`) can name;
   * undefined when the tag does not exist. A tag has no digest to check the
   * bytes against; callers parse them as the document they expect.
   */
  async fetchTagged(tag: string, accept: string, signal?: AbortSignal): Promise<TaggedManifest | undefined> {
    const res = await this.http.send({ method: 'GET', url: `/v2/${this.name}/manifests/${tag}`, scopes: this.pull, signal, headers: { accept } });
    if (res.status === 404) {
      await res.body.dump().catch(() => undefined);
      return undefined;
    }
    if (res.status !== 200) throw await this.http.error(res, 'GET');
    const etag = res.header('etag');
    const contentType = res.header('content-type')?.split(';')[0]?.trim();
    const bytes = await readAll(res.body, maxManifestBytes, `manifest ${tag}`);
    return { bytes, ...(contentType ? { contentType } : {}), ...(etag ? { etag } : {}) };
  }

  /**
   * Writes `bytes` under `tag` only if the tag still holds what was read:
   * `If-Match` with the ETag {@link fetchTagged} gave, or `If-None-Match: *`
   * for a tag that did not exist (`ifNew`). False when the registry answers
   * 412 (another writer came between); registries that ignore the condition
   * write anyway, so callers read the tag back.
   */
  async putTagged(tag: string, bytes: Buffer, mediaType: string, condition: { etag?: string; ifNew?: boolean }, signal?: AbortSignal): Promise<boolean> {
    const headers: Record<string, string> = { 'content-type': mediaType };
    if (condition.etag) headers['if-match'] = condition.etag;
    else if (condition.ifNew) headers['if-none-match'] = '*';
    const res = await this.http.send({ method: 'PUT', url: `/v2/${this.name}/manifests/${tag}`, body: bytes, scopes: this.push_, headers, signal });
    if (res.status === 412) {
      await res.body.dump().catch(() => undefined);
      return false;
    }
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await this.http.error(res, 'PUT');
    await res.body.dump().catch(() => undefined);
    return true;
  }

  /** Points a tag at a manifest: PUTs its bytes (kept from this session, or fetched by digest) under the tag. */
  async tag(desc: Descriptor, tag: string): Promise<void> {
    const bytes = await this.fetchManifestBytes(desc);
    await this.putManifest(bytes, desc.mediaType, tag);
  }

  /** TaggingPusher: the manifest and its tag in one PUT, the registry storing it by digest too. */
  async pushTagged(desc: Descriptor, bytes: Buffer, tag: string): Promise<void> {
    const echoed = await this.sendManifest(checkBytes(desc, bytes, this.what(desc)), desc.digest, desc.mediaType, tag);
    // A PUT by tag is held to the digest by the Docker-Content-Digest the registry answers. Where it
    // answers none, the manifest also goes to /manifests/<digest>, which stores that digest or fails,
    // as every push did before: the digest a push reports is there either way.
    if (!echoed) await this.sendManifest(bytes, desc.digest, desc.mediaType, desc.digest);
  }
}
