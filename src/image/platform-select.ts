/**
 * Choosing one image from an index by platform — the one implementation
 * behind every command's `--platform` (`pull`, `copy`, `inspect`, `verify`,
 * `extract`, `image unpack`, `image build --base`). Works the same for
 * container images (platform from the index entry, else the config) and OS
 * image artifacts (platform from the index entry, else the product
 * `variant`, e.g. `x86_64-debug` → linux/amd64/debug).
 */

import type { ContentStore } from '../content/store.js';
import { readManifestBytes } from '../copy/graph.js';
import { OciError } from '../errors.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/descriptor.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from '../oci/mediatypes.js';
import { isOsImageManifest, readOsImage } from '../osimage/reader.js';
import { formatPlatform, hostPlatform, platformFromProductVariant, platformMatches, samePlatform } from './platform.js';

/** Whether an index entry is an attestation manifest rather than an image (buildx marks them both ways). */
export function isAttestation(desc: Descriptor): boolean {
  if (desc.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return desc.platform?.os === 'unknown' && desc.platform.architecture === 'unknown';
}

/**
 * Picks the manifest for `platform` from an index. With no platform asked
 * for: the only image, else the one for this machine ({@link hostPlatform}).
 * An entry of exactly the platform wins (so `linux/amd64` takes the plain
 * build over `linux/amd64/debug`); else the first whose OS and architecture
 * match, and whose variant too when one is asked for. Attestations are
 * never chosen.
 */
export function selectFromIndex(index: ImageIndex, platform: Platform | undefined, what: string): Descriptor {
  const images = (index.manifests ?? []).filter((m) => isManifestMediaType(m.mediaType) && !isAttestation(m));
  if (!platform && images.length === 1) return images[0]!;
  const want = platform ?? hostPlatform();
  const found = images.find((m) => samePlatform(m.platform, want)) ?? images.find((m) => platformMatches(m.platform, want));
  if (!found) {
    const have = images.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ') || 'none';
    const whose = platform ? '' : " (this machine's platform)";
    throw new OciError('NOT_FOUND', `${what} has no image for ${formatPlatform(want)}${whose} (it has: ${have}); choose one with --platform`);
  }
  return found;
}

/**
 * The platform a manifest's own content declares: a container image's
 * config, or an OS image's product variant. Undefined when it declares
 * none (other artifacts, a variant that names no architecture).
 */
export async function platformOfManifest(store: ContentStore, desc: Descriptor, bytes?: Buffer): Promise<Platform | undefined> {
  const manifestBytes = bytes ?? (await readManifestBytes(store, desc));
  if (isOsImageManifest(manifestBytes)) {
    return platformFromProductVariant((await readOsImage(store, desc)).productInfo.variant);
  }
  let manifest: Partial<ImageManifest>;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as Partial<ImageManifest>;
  } catch {
    return undefined;
  }
  const config = manifest.config;
  if (!config || (config.mediaType !== MediaType.ociConfig && config.mediaType !== MediaType.dockerConfig) || config.size > 4 << 20) return undefined;
  const parts: Buffer[] = [];
  for await (const c of await store.fetch(config)) parts.push(c as Buffer);
  try {
    const c = JSON.parse(Buffer.concat(parts).toString('utf8')) as Partial<Platform>;
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return undefined;
    return { architecture: c.architecture, os: c.os, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) };
  } catch {
    return undefined;
  }
}

/** What {@link selectRoot} chose. */
export interface SelectedRoot {
  /** The manifest to work on (the root itself unless it was chosen from an index). */
  root: Descriptor;
  /** The index it was chosen from. */
  index?: Descriptor;
  /** Its platform, as the index lists it. */
  platform?: Platform;
}

/**
 * Narrows a location's root to one image: from an index, the entry for
 * `platform` (with `required`, also when no platform is given: this
 * machine's); a single manifest is kept, and refused when `platform` was
 * asked for and the manifest declares another one.
 */
export async function selectRoot(
  store: ContentStore,
  root: Descriptor,
  platform: Platform | undefined,
  what: string,
  options: { required?: boolean } = {},
): Promise<SelectedRoot> {
  if (isIndexMediaType(root.mediaType)) {
    if (!platform && !options.required) return { root };
    let index: ImageIndex;
    try {
      index = JSON.parse((await readManifestBytes(store, root)).toString('utf8')) as ImageIndex;
    } catch {
      throw new OciError('INVALID_FORMAT', `${what}: index ${root.digest} is not valid JSON`);
    }
    if (!Array.isArray(index.manifests)) throw new OciError('INVALID_FORMAT', `${what}: index ${root.digest} has no manifests array`);
    const chosen = selectFromIndex(index, platform, what);
    return {
      root: { mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size },
      index: root,
      ...(chosen.platform ? { platform: chosen.platform } : {}),
    };
  }
  if (platform) {
    const declared = await platformOfManifest(store, root);
    if (declared && !platformMatches(declared, platform)) {
      throw new OciError('INVALID_ARGUMENT', `${what} is an image for ${formatPlatform(declared)}, not ${formatPlatform(platform)}`);
    }
    return { root, ...(declared ? { platform: declared } : {}) };
  }
  return { root };
}
