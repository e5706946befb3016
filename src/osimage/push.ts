/**
 * Build-and-push in one pass: each payload streams file → chunk hashes →
 * zstd frames → chunked upload, never written to disk and never whole in
 * memory; then the config, and last the manifest under its tags, so an
 * interrupted push leaves nothing tagged.
 */

import { pushManifestTagged } from '../content/capabilities.js';
import { childrenOf } from '../copy/graph.js';
import { blobReport, orderedBlobReport, type PushReport, pushInterrupted, pushTags } from '../copy/push-report.js';
import { OciError } from '../errors.js';
import type { RegistryClient } from '../registry/index.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { type BuiltOsImage, buildOsImageBlobs, type OsImageBuildOptions } from './builder.js';

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
  const tagged: string[] = [];
  try {
    image = await buildOsImageBlobs(repo, options);
    if (ref.digest && ref.digest !== image.descriptor.digest) {
      throw new OciError('DIGEST_MISMATCH', `${reference}: the built manifest is ${image.descriptor.digest}`);
    }
    // The first tag's PUT stores the manifest too (a round trip fewer than a PUT by digest first, as skopeo and crane push).
    const { digest, mediaType, size } = image.descriptor;
    await pushManifestTagged(repo, image.descriptor, image.manifest, tags, {
      signal: options.signal,
      onStored: () => options.progress?.({ type: 'manifest', digest, mediaType, size }),
      onTag: (tag) => {
        tagged.push(tag);
        options.progress?.({ type: 'tag', tag, reference: formatReference({ ...repo.reference, tag, digest: undefined }) });
      },
    });
  } catch (err) {
    throw options.signal?.aborted ? pushInterrupted(repo, err, tagged) : err;
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
