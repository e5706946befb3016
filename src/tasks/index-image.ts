/**
 * Combining per-platform images into one image index (image-spec
 * image-index.md): each source's manifest (or every manifest of a source
 * that is itself an index) is copied with its config and layers, and
 * listed with the platform its config declares. OS image artifacts are
 * listed with `artifactType` and the platform given for them, else the one
 * their product `variant` names (`x86_64` → linux/amd64, `aarch64-debug` →
 * linux/arm64/debug), else refused with a line asking for `--platform`. Attestation manifests of
 * a source index (what buildx adds beside each image: provenance and SBOMs
 * as in-toto layers, platform unknown/unknown) are not images: they are
 * copied and listed exactly as the source lists them, annotations included,
 * so `vnd.docker.reference.digest` still names their image, and take no
 * platform. The index is stored last, then tagged; a local destination is
 * committed at the end.
 */
import { pushManifestTagged } from '../content/capabilities.js';
import type { ContentStore } from '../content/store.js';
import { copyGraph, readManifestBytes } from '../copy/graph.js';
import {
  type LocationOptions,
  openLocationForReading,
  openLocationForWriting,
  parseLocation,
  type WritableLocation,
  writeAndSettle,
} from '../copy/locations.js';
import { OciError } from '../errors.js';
import { configPlatform } from '../image/config.js';
import { formatPlatform, platformFromProductVariant, platformMatches } from '../image/platform.js';
import { isAttestation } from '../image/platform-select.js';
import { readImage } from '../image/source.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/descriptor.js';
import { sha256Digest } from '../oci/digest.js';
import { canonicalJson, jsonMap } from '../oci/json.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from '../oci/mediatypes.js';
import { OS_IMAGE_ARTIFACT_TYPE } from '../osimage/format.js';
import { isOsImageManifest, readOsImage } from '../osimage/reader.js';

/** Options of {@link buildIndexTo}. */
export interface IndexBuildOptions {
  /** Index annotations. */
  annotations?: Record<string, string>;
  /** Blobs copied at once per source (default 4). */
  jobs?: number;
  /** Platforms given per source (the SRC string exactly as in `sources`); OS images need one unless their variant names it. */
  platforms?: ReadonlyMap<string, Platform>;
  signal?: AbortSignal;
}

/** An entry of the index being built, with the SRC it came from. */
type IndexEntry = Descriptor & { source: string };

/** What {@link buildIndexTo} wrote. */
export interface IndexBuildReport {
  index: Buffer;
  descriptor: Descriptor;
  /** The index's entries, each with the source it came from. */
  manifests: IndexEntry[];
  output: string;
  tag?: string;
}

function platformEntry(desc: Descriptor, platform: NonNullable<Descriptor['platform']>): Descriptor {
  return { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, platform };
}

/**
 * The index entry of the manifest `desc`: an OS image (platform as given,
 * as listed, or from its product variant; artifactType the format's) or a
 * container image (platform from its config, which a given one must match).
 */
async function imageEntry(store: ContentStore, desc: Descriptor, what: string, given: Platform | undefined, listed: Platform | undefined): Promise<Descriptor> {
  const bytes = await readManifestBytes(store, desc);
  if (isOsImageManifest(bytes)) {
    const image = await readOsImage(store, desc, bytes);
    const variant = image.productInfo.variant;
    const platform = given ?? listed ?? platformFromProductVariant(variant);
    if (!platform) {
      throw new OciError(
        'INVALID_ARGUMENT',
        `${what} is an OS image whose product variant ${variant ? `"${variant}" names no known architecture` : 'is empty'}; give its platform with --platform ${what}=linux/ARCH[/VARIANT]`,
      );
    }
    return { ...platformEntry(desc, platform), artifactType: OS_IMAGE_ARTIFACT_TYPE };
  }
  const image = await readImage(store, desc, what);
  const declared = listed ?? configPlatform(image.config);
  if (given && !platformMatches(declared, given)) {
    throw new OciError(
      'INVALID_ARGUMENT',
      `${what} is a container image for ${formatPlatform(declared)}, not ${formatPlatform(given)} as --platform says; its config decides`,
    );
  }
  return platformEntry(desc, declared);
}

/** Builds an index of the images at `sources` into `dest`. */
export async function buildIndexTo(
  dest: string,
  sources: string[],
  options: IndexBuildOptions = {},
  locations: LocationOptions = {},
): Promise<IndexBuildReport> {
  if (sources.length === 0) throw new OciError('USAGE', 'no images given: name at least one SRC image');
  for (const src of options.platforms?.keys() ?? []) {
    if (!sources.includes(src)) throw new OciError('USAGE', `--platform ${src}=…: "${src}" is not one of the SRC images (write it exactly as given)`);
  }
  const parsed = parseLocation(dest);
  if (parsed.kind === 'registry' && parsed.digest && !parsed.tag) {
    throw new OciError('INVALID_REFERENCE', `${dest}: an index has no digest before it is built; push to a tag (REPO:TAG)`);
  }
  const out = await openLocationForWriting(dest, locations);
  return writeAndSettle(out, async () => writeIndex(out, await copyEntries(out, sources, options, locations), options), {
    signal: options.signal,
    message: 'index aborted',
  });
}

/** Copies the images at `sources` (an index's entries, each) to `out`; the index entries they make, in order. */
async function copyEntries(out: WritableLocation, sources: string[], options: IndexBuildOptions, locations: LocationOptions): Promise<IndexEntry[]> {
  const entries: IndexEntry[] = [];
  const seen = new Map<string, string>();
  for (const src of sources) {
    const loc = await openLocationForReading(src, locations);
    // An entry's graph, copied as the descriptor names it (its platform and annotations stay in the index).
    const copyEntry = ({ mediaType, digest, size }: Descriptor) =>
      copyGraph(loc.store, out.store, { mediaType, digest, size }, { jobs: options.jobs, signal: options.signal });
    try {
      const children: Descriptor[] = [];
      // Carried over verbatim after the images: not read as images, not counted as platforms.
      const attestations: Descriptor[] = [];
      const given = options.platforms?.get(src);
      if (isIndexMediaType(loc.root.mediaType)) {
        if (given) throw new OciError('USAGE', `--platform ${src}=…: ${src} is an index, whose entries keep the platforms it lists`);
        const index = JSON.parse((await readManifestBytes(loc.store, loc.root)).toString('utf8')) as ImageIndex;
        for (const m of index.manifests ?? []) {
          if (!isManifestMediaType(m.mediaType)) continue;
          if (isAttestation(m)) {
            attestations.push(m);
            continue;
          }
          children.push(await imageEntry(loc.store, m, `${src} (${m.digest})`, undefined, m.platform));
        }
      } else {
        children.push(await imageEntry(loc.store, loc.root, src, given, undefined));
      }
      for (const child of children) {
        if (entries.some((e) => e.digest === child.digest)) continue;
        const key = formatPlatform(child.platform!);
        const other = seen.get(key);
        if (other) throw new OciError('INVALID_ARGUMENT', `${src} and ${other} are both images for ${key}; an index holds one image per platform`);
        seen.set(key, src);
        await copyEntry(child);
        entries.push({ ...child, source: src });
      }
      for (const att of attestations) {
        // The same source named twice; one attestation listed for two images stays listed twice.
        const about = att.annotations?.['vnd.docker.reference.digest'];
        if (entries.some((e) => e.digest === att.digest && e.annotations?.['vnd.docker.reference.digest'] === about)) continue;
        await copyEntry(att);
        entries.push({ ...att, source: src });
      }
    } finally {
      await loc.close();
    }
  }
  return entries;
}

/** Writes the index of `entries` to `out`, and its tag. */
async function writeIndex(out: WritableLocation, entries: IndexEntry[], options: IndexBuildOptions): Promise<IndexBuildReport> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: entries.map(({ source: _, ...d }) => d),
  };
  if (options.annotations && Object.keys(options.annotations).length > 0) index.annotations = jsonMap(options.annotations);
  const bytes = canonicalJson(index);
  const descriptor: Descriptor = { mediaType: MediaType.ociIndex, digest: sha256Digest(bytes), size: bytes.length };
  await pushManifestTagged(out.store, descriptor, bytes, out.tag ? [out.tag] : [], { signal: options.signal });
  return { index: bytes, descriptor, manifests: entries, output: out.location, tag: out.tag };
}
