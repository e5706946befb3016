/**
 * Build-and-push in one pass: each payload streams file → chunk hashes →
 * zstd frames → chunked upload, never written to disk and never whole in
 * memory; then the config, the manifest by digest, and the tags last, so an
 * interrupted push leaves nothing tagged.
 */

import { childrenOf } from '../copy/graph.js';
import { blobReport, orderedBlobReport, type PushReport, pushInterrupted, pushTags } from '../copy/push-report.js';
import { OciError } from '../errors.js';
import type { ProgressSink } from '../progress/events.js';
import type { RegistryClient, RegistryRepository } from '../registry/index.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { type BuiltOsImage, buildOsImage, type OsImageBuildOptions } from './builder.js';

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
  if (ref.digest && !ref.tag && !options.tags?.length) {
    throw new OciError('INVALID_REFERENCE', `${reference}: a build has no digest before it is built; push to a tag (REPO:TAG)`);
  }
  const tags = pushTags(ref, options.tags);
  const repo = client.repository(ref, { signal: options.signal });
  let image: BuiltOsImage;
  try {
    image = await buildOsImage(repo, options);
    if (ref.digest && ref.digest !== image.descriptor.digest) {
      throw new OciError('DIGEST_MISMATCH', `${reference}: the built manifest is ${image.descriptor.digest}`);
    }
    options.signal?.throwIfAborted();
    await tagAll(repo, image.manifest, image.descriptor.mediaType, tags, options.progress);
  } catch (err) {
    throw options.signal?.aborted ? pushInterrupted(repo, err) : err;
  }
  const reused = image.payloads
    .filter((p) => p.reused)
    .map((p) => ({ digest: p.digest, size: p.blobSize, mediaType: p.mediaType, status: 'exists' as const, uploadedBytes: 0 }));
  return {
    reference: `${formatReference({ ...ref, tag: undefined, digest: undefined })}@${image.descriptor.digest}`,
    digest: image.descriptor.digest,
    mediaType: image.descriptor.mediaType,
    size: image.descriptor.size,
    tags,
    blobs: orderedBlobReport(childrenOf(image.descriptor, image.manifest).blobs, blobReport(repo.results, reused)),
    image,
  };
}
