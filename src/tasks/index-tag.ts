/**
 * `push --index-tag T --platform P`: adding the image just pushed to the
 * image index at tag T of the same repository, merged with what T holds,
 * so that the jobs of a release that build one architecture each end up
 * under one tag.
 *
 * The merge reads the index, replaces the entry for the same platform (a
 * rebuild of that architecture) or adds one, sorts the entries by platform
 * (so the index does not depend on which job came last) and writes it
 * back. Two jobs doing this at once must not lose each other's entry:
 *
 * - Where the registry gives an `ETag` with the index, the write carries
 *   `If-Match`; a registry that honours it answers 412 when another job
 *   wrote in between, and the merge starts again from a fresh read.
 * - Many registries (the CNCF distribution among them) ignore `If-Match`,
 *   and some give no ETag. So every write is read back at once, and again
 *   after a pause of about `settleMs` (by default 0.2–0.6 s); when our entry is
 *   gone (a job that had read before our write has overwritten it), the
 *   merge is done again on what is there now. The job that overwrote us
 *   does the same for its own entry, so both end up in the index. What this
 *   cannot see is a writer whose read and write are further apart than the
 *   pause: merges are a read and a write of a few kilobytes, milliseconds
 *   apart, so that needs a registry slower than the pause.
 */
import { OciError } from '../errors.js';
import { formatPlatform, samePlatform } from '../image/platform.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/descriptor.js';
import { sha256Digest } from '../oci/digest.js';
import { canonicalJson } from '../oci/json.js';
import { isIndexMediaType, MediaType } from '../oci/mediatypes.js';
import { OS_IMAGE_ARTIFACT_TYPE } from '../osimage/format.js';
import { isOsImageManifest } from '../osimage/reader.js';
import type { ProgressSink } from '../progress/events.js';
import { formatReference } from '../registry/reference.js';
import { manifestAccept, type RegistryRepository } from '../registry/repository.js';
import { sleep } from '../util/sleep.js';
import { platformOfManifest } from './select-root.js';

/** Options of {@link addToIndexTag}. */
export interface IndexTagOptions {
  signal?: AbortSignal;
  /** Pause before the second read-back (randomized ×0.5–1.5; default 400 ms). */
  settleMs?: number;
  /** Merges tried before giving up (default 10). */
  maxAttempts?: number;
  progress?: ProgressSink;
}

/** What {@link addToIndexTag} did. */
export interface IndexTagReport {
  tag: string;
  /** `HOST/REPO:TAG`. */
  reference: string;
  /** The index as written (or found, when it already listed the image). */
  digest: string;
  platform: Platform;
  /** The entries of the index as written. */
  manifests: Descriptor[];
  /** The digest the same platform had before, when this push replaced it. */
  replaced?: string;
  /** Merge rounds (1 unless a concurrent writer got in between). */
  rounds: number;
  /** Whether the registry gave an ETag, so the writes carried If-Match. */
  conditional: boolean;
}

interface CurrentIndex {
  index: ImageIndex;
  /** The digest of the bytes read. */
  digest: string;
  etag?: string;
}

/** Reads what the tag holds: undefined when nothing; an index (OCI or Docker list) with its ETag; anything else refused. */
async function readIndex(repo: RegistryRepository, tag: string, signal?: AbortSignal): Promise<CurrentIndex | undefined> {
  const read = await repo.fetchTagged(tag, manifestAccept, signal);
  if (!read) return undefined;
  const { bytes, etag } = read;
  const where = formatReference({ ...repo.reference, tag, digest: undefined });
  let index: ImageIndex;
  try {
    index = JSON.parse(bytes.toString('utf8')) as ImageIndex;
  } catch {
    throw new OciError('INVALID_FORMAT', `${where} is not JSON`);
  }
  const type = read.contentType || index?.mediaType;
  if (!index || !Array.isArray(index.manifests) || !isIndexMediaType(type)) {
    throw new OciError(
      'INVALID_ARGUMENT',
      `--index-tag ${tag}: ${where} holds a single image, not an index; choose another --index-tag, or delete that tag first`,
    );
  }
  return { index, digest: sha256Digest(bytes), ...(etag ? { etag } : {}) };
}

/** The platform order of a merged index: by OS/ARCH/VARIANT; entries without a platform (attestations) after, as they were. */
function byPlatform(entries: Descriptor[]): Descriptor[] {
  const key = (d: Descriptor): string => (d.platform ? formatPlatform(d.platform) : '\uffff');
  return entries
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const ka = key(a.d);
      const kb = key(b.d);
      return ka < kb ? -1 : ka > kb ? 1 : a.i - b.i;
    })
    .map(({ d }) => d);
}

const listed = (index: ImageIndex | undefined, entry: Descriptor): boolean =>
  !!index?.manifests.some((m) => m.digest === entry.digest && samePlatform(m.platform, entry.platform!));

/**
 * Puts `entry` (a manifest already in `repo`, with its platform) into the
 * index at `tag`; see the module comment for concurrent writers.
 */
export async function addToIndexTag(
  repo: RegistryRepository,
  tag: string,
  entry: Descriptor & { platform: Platform },
  options: IndexTagOptions = {},
): Promise<IndexTagReport> {
  const settle = options.settleMs ?? 400;
  const maxAttempts = options.maxAttempts ?? 10;
  const reference = formatReference({ ...repo.reference, tag, digest: undefined });
  let conditional = false;
  let replaced: string | undefined;
  /**
   * Another push of the same platform (neither ours nor the one we replaced) is not
   * undone: two jobs that build one architecture would otherwise take turns for ever.
   */
  const checkRival = (read: CurrentIndex | undefined): ImageIndex | undefined => {
    const rival = read?.index.manifests.find(
      (m) => m.platform && samePlatform(m.platform, entry.platform) && m.digest !== entry.digest && m.digest !== replaced,
    );
    if (rival) {
      throw new OciError(
        'REGISTRY',
        `another push put ${rival.digest} for ${formatPlatform(entry.platform)} into ${reference} at the same time as this one; the index lists that image, not ${entry.digest}`,
        {
          hint: 'push one image per platform and index tag at a time',
        },
      );
    }
    return read?.index;
  };
  for (let round = 1; round <= maxAttempts; round++) {
    const current = await readIndex(repo, tag, options.signal);
    conditional ||= !!current?.etag;
    if (!listed(current?.index, entry)) {
      const others = (current?.index.manifests ?? []).filter((m) => {
        if (m.platform && samePlatform(m.platform, entry.platform)) {
          replaced = m.digest;
          return false;
        }
        return m.digest !== entry.digest;
      });
      const index: ImageIndex = {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: byPlatform([...others, entry]),
        ...(current?.index.annotations ? { annotations: current.index.annotations } : {}),
      };
      // If-None-Match: * when the tag is new, for registries that check it.
      if (!(await repo.putTagged(tag, canonicalJson(index), MediaType.ociIndex, { etag: current?.etag, ifNew: !current }, options.signal))) {
        // Another writer got in between our read and our write: merge again with what it wrote.
        await sleep(20 + Math.random() * 80 * round, options.signal);
        continue;
      }
    }
    // A writer that read before our PUT may overwrite it: look again now and once it has had time to finish.
    if (!listed(checkRival(await readIndex(repo, tag, options.signal)), entry)) continue;
    await sleep(settle * (0.5 + Math.random()), options.signal);
    const read = await readIndex(repo, tag, options.signal);
    const after = checkRival(read);
    if (!after || !listed(after, entry)) continue;
    options.progress?.({ type: 'tag', tag, reference });
    return {
      tag,
      reference,
      digest: read!.digest,
      platform: entry.platform,
      manifests: after.manifests,
      ...(replaced && replaced !== entry.digest ? { replaced } : {}),
      rounds: round,
      conditional,
    };
  }
  throw new OciError('REGISTRY', `could not add ${entry.digest} to the index ${reference} after ${maxAttempts} attempts (too many concurrent writers)`, {
    hint: 'run the command again: the image itself is pushed',
  });
}

/**
 * The index entry of a manifest just pushed to `repo`: its platform as
 * given, else the one it declares (an OS image's product variant, a
 * container image's config); `artifactType` for OS images. An index, or an
 * image whose platform cannot be told, is refused.
 */
export async function indexEntryFor(repo: RegistryRepository, desc: Descriptor, given: Platform | undefined): Promise<Descriptor & { platform: Platform }> {
  if (isIndexMediaType(desc.mediaType)) {
    throw new OciError('USAGE', `--index-tag adds one image to an index, but ${desc.digest} is an index itself; use 'oci-os index' to combine indexes`);
  }
  const bytes = await repo.fetchManifestBytes(desc);
  const platform = given ?? (await platformOfManifest(repo, desc, bytes));
  if (!platform) {
    throw new OciError('USAGE', `--index-tag: the platform of ${desc.digest} cannot be told from its content; give it with --platform OS/ARCH[/VARIANT]`);
  }
  return {
    mediaType: desc.mediaType,
    digest: desc.digest,
    size: desc.size,
    platform,
    ...(isOsImageManifest(bytes) ? { artifactType: OS_IMAGE_ARTIFACT_TYPE } : {}),
  };
}
