/**
 * Artifacts that refer to an image (image-spec 1.1 `subject`;
 * distribution-spec "Listing Referrers" and "Pushing Manifests with
 * Subject"): `attach` pushes an artifact manifest whose subject is an
 * existing manifest; `listReferrers` finds them. A registry with the
 * referrers API answers the manifest PUT with `OCI-Subject`; for one
 * without it, the client keeps the referrers tag schema: an image index at
 * tag `<alg>-<hex>` of the subject digest, read, de-duplicated, extended and
 * written back. Concurrent writers are handled with `If-Match` when the
 * registry gives an ETag, and, because many registries ignore it, by reading
 * the index again after writing (at once and after a settle delay) and
 * adding our entry again when a concurrent writer dropped it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { fsError, OciError } from '../errors.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/descriptor.js';
import { sha256Digest } from '../oci/digest.js';
import { canonicalJson, jsonMap } from '../oci/json.js';
import { Annotation, MediaType } from '../oci/mediatypes.js';
import { sleep } from '../util/sleep.js';
import { pullScope, pushScope } from './auth/token-cache.js';
import { RegistryError, readCapped } from './errors.js';
import { formatReference, manifestReference } from './reference.js';
import { maxManifestBytes, type RegistryRepository } from './repository.js';

/** The empty JSON blob `{}` that artifact manifests use as their config (image-spec "Guidance for an Empty Descriptor"). */
export const emptyJsonDescriptor: Descriptor = {
  mediaType: MediaType.ociEmpty,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
};
const emptyJson = Buffer.from('{}');

/** The tag of the referrers fallback index for a subject digest (`sha256:ab…` → `sha256-ab…`). */
export function referrersTag(subjectDigest: string): string {
  // distribution-spec, "Referrers Tag Schema": <alg>-<ref>, the algorithm cut to 32 characters, the encoded digest to 64.
  const at = subjectDigest.indexOf(':');
  return `${subjectDigest.slice(0, at).slice(0, 32)}-${subjectDigest.slice(at + 1).slice(0, 64)}`;
}

/** A file to attach. */
export interface AttachFile {
  path: string;
  /** Layer media type. Default `application/octet-stream`. */
  mediaType?: string;
}

/** Options of {@link attach}. */
export interface AttachOptions {
  /** The artifact's `artifactType` (e.g. `application/spdx+json`). */
  artifactType: string;
  files: AttachFile[];
  /** Annotations of the artifact manifest (and of its entry in the fallback index). */
  annotations?: Record<string, string>;
  /** Milliseconds to wait before reading the fallback index a last time after writing it. Default 400 (±50% jitter). */
  settleMs?: number;
  /** Most read-modify-write rounds on the fallback index. Default 10. */
  maxAttempts?: number;
  signal?: AbortSignal;
}

/** What {@link attach} did. */
export interface AttachResult {
  /** `HOST/REPO@sha256:…` of the artifact manifest. */
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string;
  subject: Descriptor;
  /** `api`: the registry indexes referrers itself (it answered OCI-Subject); `tag`: the fallback index was updated. */
  referrersSource: 'api' | 'tag';
  /** The fallback tag written, when one was. */
  fallbackTag?: string;
  /** Read-modify-write rounds the fallback index needed (1 without contention). */
  fallbackRounds?: number;
}

/** Validates an `artifactType` (a media type, RFC 6838 grammar). */
export function checkArtifactType(t: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/.test(t)) {
    throw new OciError('USAGE', `"${t}" is not a media type; an artifact type looks like application/vnd.example.sbom+json`);
  }
}

async function fileDescriptor(file: AttachFile): Promise<Descriptor> {
  try {
    const st = await stat(file.path);
    if (!st.isFile()) throw new OciError('INPUT_UNREADABLE', `${file.path} is not a regular file`);
    const h = createHash('sha256');
    let size = 0;
    for await (const c of createReadStream(file.path) as AsyncIterable<Buffer>) {
      h.update(c);
      size += c.length;
    }
    return {
      mediaType: file.mediaType ?? MediaType.octetStream,
      digest: `sha256:${h.digest('hex')}`,
      size,
      annotations: { [Annotation.title]: basename(file.path) },
    };
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw fsError(err, file.path, 'read');
  }
}

/**
 * Pushes an artifact manifest (config = the empty descriptor, layers = the
 * files with title annotations, `subject` = the manifest the repository's
 * reference names) and makes it discoverable as a referrer of it.
 */
export async function attach(repo: RegistryRepository, options: AttachOptions): Promise<AttachResult> {
  checkArtifactType(options.artifactType);
  const titles = new Set<string>();
  for (const f of options.files) {
    const t = basename(f.path);
    if (titles.has(t)) throw new OciError('USAGE', `two files are named "${t}"; their titles would clash`);
    titles.add(t);
  }
  const found = await repo.resolve(manifestReference(repo.reference));
  const subject: Descriptor = { mediaType: found.mediaType, digest: found.digest, size: found.size };
  const layers = await Promise.all(options.files.map(fileDescriptor));
  await repo.pushContent(emptyJsonDescriptor, Readable.from([emptyJson]));
  for (const [i, layer] of layers.entries()) {
    const path = options.files[i]!.path;
    await repo.pushContent(layer, createReadStream(path), {
      reopen: () => createReadStream(path),
      readAt: (start) => createReadStream(path, { start }),
      signal: options.signal,
    });
  }
  const manifestObj: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: options.artifactType,
    config: emptyJsonDescriptor,
    // An artifact without files carries the empty descriptor as its one layer (image-spec "Guidelines for Artifact Usage").
    layers: layers.length > 0 ? layers : [emptyJsonDescriptor],
    subject,
  };
  if (options.annotations && Object.keys(options.annotations).length > 0) manifestObj.annotations = jsonMap(options.annotations);
  const bytes = canonicalJson(manifestObj);
  const digest = sha256Digest(bytes);
  const res = await putArtifactManifest(repo, digest, bytes, options.signal);
  const echoed = res.header('docker-content-digest');
  const ociSubject = res.header('oci-subject');
  await res.body.dump().catch(() => undefined);
  if (echoed && echoed !== digest) throw new OciError('DIGEST_MISMATCH', `the registry stored the artifact manifest as ${echoed}, expected ${digest}`);
  const base: AttachResult = {
    reference: `${formatReference({ ...repo.reference, tag: undefined, digest: undefined })}@${digest}`,
    digest,
    mediaType: MediaType.ociManifest,
    size: bytes.length,
    artifactType: options.artifactType,
    subject,
    referrersSource: 'api',
  };
  if (ociSubject === subject.digest) return base;
  const entry: Descriptor = { mediaType: MediaType.ociManifest, digest, size: bytes.length, artifactType: options.artifactType };
  if (manifestObj.annotations) entry.annotations = manifestObj.annotations;
  const rounds = await addToFallbackIndex(repo, subject.digest, entry, options);
  return { ...base, referrersSource: 'tag', fallbackTag: referrersTag(subject.digest), fallbackRounds: rounds };
}

/**
 * PUTs the artifact manifest by digest. A `MANIFEST_BLOB_UNKNOWN` for blobs
 * this process has just pushed is a registry race, not a missing blob:
 * distribution rewrites a repository's blob link in place when another
 * client uploads the same blob (the empty config is shared by every
 * artifact), and a manifest check that reads it then finds it empty. Such
 * answers are retried a few times after a short pause.
 */
async function putArtifactManifest(repo: RegistryRepository, digest: string, bytes: Buffer, signal?: AbortSignal) {
  for (let attempt = 0; ; attempt++) {
    const res = await repo.http.send({
      method: 'PUT',
      url: `/v2/${repo.name}/manifests/${digest}`,
      body: bytes,
      scopes: [pushScope(repo.name)],
      headers: { 'content-type': MediaType.ociManifest },
      signal,
    });
    if (res.status === 201 || res.status === 200 || res.status === 202) return res;
    const err = await repo.http.error(res, 'PUT');
    if (attempt >= 4 || res.status !== 400 || !err.errors.some((e) => e.code === 'MANIFEST_BLOB_UNKNOWN')) throw err;
    await sleep(50 + Math.random() * 150 * (attempt + 1), signal);
  }
}

/** The fallback index as read, with the ETag that came with it. */
interface ReadIndex {
  index: ImageIndex;
  etag?: string;
}

async function readFallbackIndex(repo: RegistryRepository, tag: string, signal?: AbortSignal): Promise<ReadIndex | undefined> {
  const read = await repo.fetchTagged(tag, MediaType.ociIndex, signal);
  if (!read) return undefined;
  const { bytes, etag } = read;
  let index: ImageIndex;
  try {
    index = JSON.parse(bytes.toString('utf8')) as ImageIndex;
  } catch {
    throw new OciError('INVALID_FORMAT', `${repo.name}:${tag} is not JSON; it should be a referrers index`);
  }
  if (!index || !Array.isArray(index.manifests) || (index.mediaType !== undefined && index.mediaType !== MediaType.ociIndex)) {
    throw new OciError('INVALID_FORMAT', `${repo.name}:${tag} is not an image index, so it cannot hold referrers`, {
      hint: 'the tag is taken by something else; remove it or push to a registry with the referrers API',
    });
  }
  return { index, ...(etag ? { etag } : {}) };
}

function hasEntry(index: ImageIndex | undefined, digest: string): boolean {
  return !!index?.manifests.some((m) => m.digest === digest);
}

/**
 * Adds `entry` to the fallback index of `subjectDigest` (referrers tag
 * schema), de-duplicating by digest. Returns the number of write rounds.
 */
export async function addToFallbackIndex(
  repo: RegistryRepository,
  subjectDigest: string,
  entry: Descriptor,
  options: Pick<AttachOptions, 'settleMs' | 'maxAttempts' | 'signal'> = {},
): Promise<number> {
  const tag = referrersTag(subjectDigest);
  const settle = options.settleMs ?? 400;
  const maxAttempts = options.maxAttempts ?? 10;
  // Entries of referrers deleted since they were listed: a registry refuses an index that names them.
  const gone = new Set<string>();
  let pruned = false;
  for (let round = 1; round <= maxAttempts; round++) {
    const current = await readFallbackIndex(repo, tag, options.signal);
    if (!hasEntry(current?.index, entry.digest)) {
      const seen = new Set<string>();
      const manifests = (current?.index.manifests ?? []).filter((m) => !gone.has(m.digest) && !seen.has(m.digest) && seen.add(m.digest));
      manifests.push(entry);
      const bytes = canonicalJson({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });
      let written: boolean;
      try {
        written = await repo.putTagged(tag, bytes, MediaType.ociIndex, { etag: current?.etag }, options.signal);
      } catch (err) {
        if (pruned || !(err instanceof RegistryError) || err.status !== 400) throw err;
        if (!err.errors.some((e) => e.code === 'MANIFEST_BLOB_UNKNOWN' || e.code === 'MANIFEST_UNKNOWN')) throw err;
        // Once: find the listed referrers that no longer exist and write the index without them.
        pruned = true;
        for (const m of manifests) {
          if (m.digest !== entry.digest && !(await repo.exists(m))) gone.add(m.digest);
        }
        if (gone.size === 0) throw err;
        continue;
      }
      if (!written) {
        // Someone wrote the index since we read it: read again.
        await sleep(20 + Math.random() * 80 * round, options.signal);
        continue;
      }
    }
    // A writer that read before our PUT may overwrite it: look again now and once it has had time to finish.
    if (!hasEntry((await readFallbackIndex(repo, tag, options.signal))?.index, entry.digest)) continue;
    await sleep(settle * (0.5 + Math.random()), options.signal);
    if (hasEntry((await readFallbackIndex(repo, tag, options.signal))?.index, entry.digest)) return round;
  }
  throw new OciError(
    'REGISTRY',
    `could not add ${entry.digest} to the referrers index ${repo.name}:${tag} after ${maxAttempts} attempts (too many concurrent writers)`,
    {
      hint: 'run the command again',
    },
  );
}

/** Options of {@link listReferrers}. */
export interface ListReferrersOptions {
  /** Only referrers of this artifact type. */
  artifactType?: string;
  signal?: AbortSignal;
}

/** What {@link listReferrers} found. */
export interface ReferrersList {
  subject: Descriptor;
  /** `api`: the registry's referrers API answered; `tag`: read from the fallback index. */
  source: 'api' | 'tag';
  referrers: Descriptor[];
}

/**
 * Lists the referrers of the manifest the repository's reference names:
 * `GET /v2/<name>/referrers/<digest>`, and the fallback tag when the
 * registry has no such API (404). The artifact-type filter is applied here
 * when the registry did not apply it (`OCI-Filters-Applied`).
 */
export async function listReferrers(repo: RegistryRepository, options: ListReferrersOptions = {}): Promise<ReferrersList> {
  const found = await repo.resolve(manifestReference(repo.reference));
  const subject: Descriptor = { mediaType: found.mediaType, digest: found.digest, size: found.size };
  const q = options.artifactType ? `?${new URLSearchParams({ artifactType: options.artifactType })}` : '';
  const res = await repo.http.send({
    method: 'GET',
    url: `/v2/${repo.name}/referrers/${subject.digest}${q}`,
    scopes: [pullScope(repo.name)],
    signal: options.signal,
    headers: { accept: MediaType.ociIndex },
  });
  let source: 'api' | 'tag';
  let manifests: Descriptor[];
  let filtered = false;
  if (res.status === 200) {
    filtered = (res.header('oci-filters-applied') ?? '')
      .split(',')
      .map((s) => s.trim())
      .includes('artifactType');
    const bytes = await readCapped(res.body, maxManifestBytes);
    try {
      manifests = (JSON.parse(bytes.toString('utf8')) as ImageIndex).manifests ?? [];
    } catch {
      throw new OciError('INVALID_FORMAT', `the referrers API of ${repo.reference.registry} answered something that is not an image index`);
    }
    source = 'api';
  } else if (res.status === 404 || res.status === 405 || res.status === 501) {
    await res.body.dump().catch(() => undefined);
    manifests = (await readFallbackIndex(repo, referrersTag(subject.digest), options.signal))?.index.manifests ?? [];
    source = 'tag';
  } else {
    throw await repo.http.error(res, 'GET');
  }
  const seen = new Set<string>();
  manifests = manifests.filter((m) => !seen.has(m.digest) && seen.add(m.digest));
  if (options.artifactType && !filtered) manifests = manifests.filter((m) => m.artifactType === options.artifactType);
  return { subject, source, referrers: manifests };
}
