/**
 * What every push reports (`--json`), whether it built an OS image into the
 * repository (`push --payload`) or copied a local graph there
 * (`push --from`): the tags it writes, its blobs in manifest order, and the
 * error of a push stopped by its signal.
 */
import { InterruptedError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { tagRe } from '../oci/reference-grammar.js';
import type { BlobStatus } from '../progress/events.js';
import type { BlobPushResult, RegistryRepository } from '../registry/index.js';
import type { Reference } from '../registry/reference.js';

/**
 * The error of a push stopped by its signal: what was tagged (`tagged`;
 * nothing unless the interrupt came between two tags, as tags come last),
 * and that the upload sessions were cancelled, or, for any the registry
 * would not let go (its DELETE refused), that it keeps them for a while.
 */
export function pushInterrupted(repo: RegistryRepository, cause: unknown, tagged: readonly string[] = []): OciError {
  const n = repo.uncancelledUploads;
  const sessions = n === 0 ? 'upload sessions were cancelled' : `${n} upload session(s) could not be cancelled (the registry removes them when they expire)`;
  const tags = tagged.length === 0 ? 'nothing was tagged' : `only ${tagged.join(', ')} was tagged`;
  return new InterruptedError(`push interrupted; ${tags}; ${sessions}`, { cause });
}

/** One blob of a push, for reports (`--json`). */
export interface PushedBlob {
  digest: string;
  size: number;
  mediaType?: string;
  status: BlobStatus;
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

/**
 * The tags a push writes: the reference's tag (default `latest` unless it
 * names a digest) plus extra ones, de-duplicated. Every tag is checked
 * against the distribution-spec grammar here, before anything is uploaded:
 * tags are written one after the other at the very end, so a bad one found
 * by the registry would leave the image half tagged (and `x/y` would even
 * change the URL the manifest is put to).
 */
export function pushTags(ref: Reference, extra: string[] = []): string[] {
  for (const tag of extra) {
    if (!tagRe.test(tag)) {
      throw new OciError('USAGE', `invalid --tag "${tag}": a tag is 1-128 characters of letters, digits, "_", "." and "-", not starting with "." or "-"`);
    }
  }
  const tags = [...(ref.tag ? [ref.tag] : ref.digest ? [] : ['latest']), ...extra];
  return [...new Set(tags)];
}

/**
 * One blob as every push report lists it, from what a repository recorded
 * (push --payload) or what a graph copy did (push --from).
 */
export function pushedBlob(r: Pick<PushedBlob, 'digest' | 'size' | 'mediaType' | 'status'> & { uploadedBytes?: number }): PushedBlob {
  return { digest: r.digest, size: r.size, mediaType: r.mediaType, status: r.status, uploadedBytes: r.uploadedBytes ?? 0 };
}

/** Turns what the repository recorded into the report's blob list, one entry per digest. */
export function blobReport(results: readonly BlobPushResult[], extra: PushedBlob[] = []): PushedBlob[] {
  const byDigest = new Map<string, PushedBlob>();
  for (const r of [...results.map(pushedBlob), ...extra]) {
    const prev = byDigest.get(r.digest);
    byDigest.set(
      r.digest,
      prev ? { ...r, uploadedBytes: prev.uploadedBytes + r.uploadedBytes, status: prev.status === 'uploaded' ? 'uploaded' : r.status } : r,
    );
  }
  return [...byDigest.values()];
}

/**
 * The report's blob list in manifest order (config first, then the layers),
 * one entry per digest. A blob the push did not record was found in the
 * registry (a HEAD that needed no upload): it is listed as `exists`, so the
 * list always names every blob the image references, whatever was sent.
 * `push --payload` and `push --from` both report in this order.
 */
export function orderedBlobReport(blobs: readonly Descriptor[], recorded: readonly PushedBlob[]): PushedBlob[] {
  const byDigest = new Map(recorded.map((b) => [b.digest, b]));
  const out = new Map<string, PushedBlob>();
  for (const d of blobs) {
    if (out.has(d.digest)) continue;
    const r = byDigest.get(d.digest);
    out.set(
      d.digest,
      r ? { ...r, mediaType: r.mediaType ?? d.mediaType } : { digest: d.digest, size: d.size, mediaType: d.mediaType, status: 'exists', uploadedBytes: 0 },
    );
  }
  // Anything recorded that the manifest does not name (none expected) is still reported.
  for (const r of recorded) if (!out.has(r.digest)) out.set(r.digest, r);
  return [...out.values()];
}
