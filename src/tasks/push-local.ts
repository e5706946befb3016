/**
 * `push --from`: an existing OCI layout or archive (any manifest, index or
 * artifact) copied verbatim to a registry, tags last.
 */

import { childrenOf } from '../copy/graph.js';
import { openLocationForReading, parseLocation } from '../copy/locations.js';
import { orderedBlobReport, type PushReport, pushedBlob, pushInterrupted, pushTags } from '../copy/push-report.js';
import { OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { ProgressSink } from '../progress/events.js';
import type { RegistryClient } from '../registry/index.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { copyGraph } from './copy-graph.js';

/**
 * Every blob under `root` in document order: a manifest's config, then its
 * layers; an index's entries one after the other. The copy finishes blobs in
 * whatever order the network allows; the report lists them in this one.
 * `manifests` holds the bytes of every manifest the copy read.
 */
function blobsInOrder(root: Descriptor, manifests: ReadonlyMap<string, Buffer>): Descriptor[] {
  const out: Descriptor[] = [];
  const seen = new Set<string>();
  const walk = (desc: Descriptor): void => {
    if (seen.has(desc.digest)) return;
    seen.add(desc.digest);
    const children = childrenOf(desc, manifests.get(desc.digest)!);
    out.push(...children.blobs);
    for (const m of children.manifests) walk(m);
  };
  walk(root);
  return out;
}

export async function pushFromLocal(
  client: RegistryClient,
  from: string,
  reference: string,
  options: { tags?: string[]; jobs?: number; signal?: AbortSignal; progress?: ProgressSink } = {},
): Promise<PushReport> {
  if (parseLocation(from).kind === 'registry') {
    throw new OciError('USAGE', `--from ${from}: push takes a local oci:DIR[:TAG] or oci-archive:FILE[:TAG]; use 'oci-os copy' between registries`);
  }
  const ref = parseReference(reference);
  const tags = pushTags(ref, options.tags);
  const src = await openLocationForReading(from, { signal: options.signal });
  try {
    if (ref.digest && ref.digest !== src.root.digest) {
      throw new OciError('DIGEST_MISMATCH', `${reference}: ${from} holds ${src.root.digest}`);
    }
    const repo = client.repository(ref, { signal: options.signal });
    const progress = options.progress;
    // Kept as the copy reads them (checked against their digests), for the report's blob order.
    const manifests = new Map<string, Buffer>();
    const onManifest = (desc: Descriptor, bytes: Buffer): void => {
      manifests.set(desc.digest, bytes);
    };
    const tagged: string[] = [];
    const onTag = (tag: string): void => {
      tagged.push(tag);
      progress?.({ type: 'tag', tag, reference: formatReference({ ...ref, tag, digest: undefined }) });
    };
    const result = await copyGraph(src.store, repo, src.root, { jobs: options.jobs, tags, signal: options.signal, onManifest, onTag, progress }).catch(
      (err: unknown) => {
        throw options.signal?.aborted ? pushInterrupted(repo, err, tagged) : err;
      },
    );
    return {
      reference: `${formatReference({ ...ref, tag: undefined, digest: undefined })}@${result.root.digest}`,
      digest: result.root.digest,
      mediaType: result.root.mediaType,
      size: result.root.size,
      tags: result.tags,
      blobs: orderedBlobReport(blobsInOrder(result.root, manifests), result.contents.filter((c) => c.kind === 'blob').map(pushedBlob)),
    };
  } finally {
    await src.close();
  }
}
