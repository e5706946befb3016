/**
 * Build-and-push in one pass: each payload streams file → chunk hashes →
 * zstd frames → chunked upload, never written to disk and never whole in
 * memory; then the config, the manifest by digest, and the tags last, so an
 * interrupted push leaves nothing tagged.
 */
import { OciError } from '../errors.js';
import type { RegistryClient, RegistryRepository, BlobPushResult } from '../registry/index.js';
import { formatReference, parseReference, type Reference } from '../registry/reference.js';
import { buildOsImage, type BuiltOsImage, type OsImageBuildOptions } from '../build/osimage.js';
import type { ProgressSink } from '../progress.js';

/** One blob of a push, for reports (`--json`). */
export interface PushedBlob {
  digest: string;
  size: number;
  mediaType?: string;
  status: 'uploaded' | 'exists' | 'mounted';
  uploadedBytes: number;
}

/** What a push did. */
export interface PushReport {
  /** `HOST/REPO@sha256:…` */
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  tags: string[];
  blobs: PushedBlob[];
}

/** The tags a push writes: the reference's tag (default `latest` unless it names a digest) plus extra ones, de-duplicated. */
export function pushTags(ref: Reference, extra: string[] = []): string[] {
  const tags = [...(ref.tag ? [ref.tag] : ref.digest ? [] : ['latest']), ...extra];
  return [...new Set(tags)];
}

/** Turns what the repository recorded into the report's blob list, one entry per digest. */
export function blobReport(results: readonly BlobPushResult[], extra: PushedBlob[] = []): PushedBlob[] {
  const byDigest = new Map<string, PushedBlob>();
  for (const r of [...results.map((r) => ({ digest: r.digest, size: r.size, mediaType: r.mediaType, status: r.status, uploadedBytes: r.uploadedBytes })), ...extra]) {
    const prev = byDigest.get(r.digest);
    byDigest.set(r.digest, prev ? { ...r, uploadedBytes: prev.uploadedBytes + r.uploadedBytes, status: prev.status === 'uploaded' ? 'uploaded' : r.status } : r);
  }
  return [...byDigest.values()];
}

/** Tags a manifest that is already in the repository, one tag after the other. */
export async function tagAll(repo: RegistryRepository, manifest: Buffer, mediaType: string, tags: string[], progress?: ProgressSink): Promise<void> {
  for (const tag of tags) {
    await repo.putManifest(manifest, mediaType, tag);
    progress?.({ type: 'tag', tag, reference: formatReference({ ...repo.reference, tag, digest: undefined }) });
  }
}

/** Builds an OS image straight into a registry repository. */
export async function pushOsImage(
  client: RegistryClient,
  reference: string,
  options: OsImageBuildOptions & { tags?: string[] },
): Promise<PushReport & { image: BuiltOsImage }> {
  const ref = parseReference(reference);
  if (ref.digest && !ref.tag && !(options.tags?.length)) {
    throw new OciError('INVALID_REFERENCE', `${reference}: a build has no digest before it is built; push to a tag (REPO:TAG)`);
  }
  const repo = client.repository(ref);
  const image = await buildOsImage(repo, options);
  if (ref.digest && ref.digest !== image.descriptor.digest) {
    throw new OciError('DIGEST_MISMATCH', `${reference}: the built manifest is ${image.descriptor.digest}`);
  }
  const tags = pushTags(ref, options.tags);
  options.signal?.throwIfAborted();
  await tagAll(repo, image.manifest, image.descriptor.mediaType, tags, options.progress);
  const reused = image.payloads.filter((p) => p.reused).map((p) => ({ digest: p.digest, size: p.blobSize, mediaType: p.mediaType, status: 'exists' as const, uploadedBytes: 0 }));
  return {
    reference: `${formatReference({ ...ref, tag: undefined, digest: undefined })}@${image.descriptor.digest}`,
    digest: image.descriptor.digest,
    mediaType: image.descriptor.mediaType,
    size: image.descriptor.size,
    tags,
    blobs: blobReport(repo.results, reused),
    image,
  };
}
