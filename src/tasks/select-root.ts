/**
 * Choosing the one image a command works on from what a location names: an
 * index's entry for a platform, or a single manifest checked against the
 * platform asked for. A task, not a format: the platform a manifest
 * declares comes from a container image's config or from an OS image's
 * product variant.
 */

import { fetchAll } from '../content/fetch-all.js';
import type { ContentStore } from '../content/store.js';
import { readManifestBytes } from '../copy/graph.js';
import { OciError } from '../errors.js';
import { formatPlatform, platformFromProductVariant, platformMatches } from '../image/platform.js';
import { selectFromIndex } from '../image/platform-select.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/descriptor.js';
import { MAX_CONFIG_BYTES } from '../oci/limits.js';
import { isIndexMediaType, MediaType } from '../oci/mediatypes.js';
import { isOsImageManifest, readOsImage } from '../osimage/reader.js';

/**
 * The platform a manifest's own content declares: a container image's
 * config, or an OS image's product variant. Undefined when it declares
 * none (other artifacts, a variant that names no architecture).
 */
export async function platformOfManifest(store: ContentStore, desc: Descriptor, bytes?: Buffer): Promise<Platform | undefined> {
  const manifestBytes = bytes ?? (await readManifestBytes(store, desc));
  if (isOsImageManifest(manifestBytes)) {
    return platformFromProductVariant((await readOsImage(store, desc, manifestBytes)).productInfo.variant);
  }
  let manifest: Partial<ImageManifest>;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as Partial<ImageManifest>;
  } catch {
    return undefined;
  }
  const config = manifest.config;
  if (!config || (config.mediaType !== MediaType.ociConfig && config.mediaType !== MediaType.dockerConfig) || config.size > MAX_CONFIG_BYTES) return undefined;
  const configBytes = await fetchAll(store, config, { cap: MAX_CONFIG_BYTES, what: `config ${config.digest}` });
  try {
    const c = JSON.parse(configBytes.toString('utf8')) as Partial<Platform>;
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
