/**
 * Reading a container image from any location (registry, `oci:`,
 * `oci-archive:`): the manifest the location names or, for an index, the
 * one for the wanted platform; its config; and a refusal, in one line, of
 * anything that is not a container image (an OS image artifact, say).
 */

import { fetchAll } from '../content/fetch-all.js';
import type { ContentStore } from '../content/store.js';
import { readManifestBytes } from '../copy/graph.js';
import { type LocationOptions, openLocationForReading, type ReadableLocation } from '../copy/locations.js';
import { OciError } from '../errors.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/descriptor.js';
import { MAX_CONFIG_BYTES } from '../oci/limits.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from '../oci/mediatypes.js';
import { type ImageConfig, parseBaseConfig } from './config.js';
import { formatPlatform, platformMatches } from './platform.js';
import { selectFromIndex } from './platform-select.js';

/** Config media types of container images. */
export const imageConfigMediaTypes: readonly string[] = [MediaType.ociConfig, MediaType.dockerConfig];

/** Layer media types whose content is a (possibly compressed) tar. */
export const tarLayerMediaTypes: readonly string[] = [
  MediaType.ociLayer,
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  MediaType.dockerLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
];

/** One container image, read. */
export interface ImageSource {
  location: ReadableLocation;
  store: ContentStore;
  /** The image manifest (chosen from an index when the location names one). */
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  configBytes: Buffer;
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new OciError('INVALID_FORMAT', `${what} is not valid JSON`);
  }
}

/** Reads and checks an image manifest and its config. */
export async function readImage(store: ContentStore, desc: Descriptor, what: string): Promise<Omit<ImageSource, 'location' | 'store'>> {
  const manifest = parseJson<ImageManifest>(await readManifestBytes(store, desc), `${what}: manifest ${desc.digest}`);
  const configType = manifest.config?.mediaType;
  if (!configType || !imageConfigMediaTypes.includes(configType) || (manifest.artifactType !== undefined && manifest.artifactType !== MediaType.ociConfig)) {
    const kind = manifest.artifactType ?? configType ?? 'unknown';
    throw new OciError(
      'INVALID_ARGUMENT',
      `${what} is not a container image (it is an artifact of type ${kind}); name an image whose config is ${MediaType.ociConfig}`,
    );
  }
  for (const l of manifest.layers ?? []) {
    if (!tarLayerMediaTypes.includes(l.mediaType)) {
      throw new OciError('UNSUPPORTED', `${what}: layer ${l.digest} has media type ${l.mediaType}, which is not a tar layer`);
    }
  }
  const configBytes = await fetchAll(store, manifest.config, { cap: MAX_CONFIG_BYTES, what: `${what}: config` });
  const config = parseBaseConfig(configBytes, what);
  if (config.rootfs.diff_ids.length !== (manifest.layers ?? []).length) {
    throw new OciError('INVALID_FORMAT', `${what}: the config lists ${config.rootfs.diff_ids.length} diff_ids for ${(manifest.layers ?? []).length} layers`);
  }
  return { descriptor: desc, manifest, config, configBytes };
}

/**
 * Opens the image a location names. `platform` chooses from an index and,
 * for a single image, must match it. Close `location` when done.
 */
export async function openImage(input: string, options: LocationOptions & { platform?: Platform } = {}): Promise<ImageSource> {
  const location = await openLocationForReading(input, options);
  try {
    let desc = location.root;
    if (isIndexMediaType(desc.mediaType)) {
      const index = parseJson<ImageIndex>(await readManifestBytes(location.store, desc), `${input}: index ${desc.digest}`);
      desc = selectFromIndex(index, options.platform, input);
    } else if (!isManifestMediaType(desc.mediaType)) {
      throw new OciError('INVALID_ARGUMENT', `${input} is not a container image (its manifest has media type ${desc.mediaType})`);
    }
    const image = await readImage(location.store, desc, input);
    const { os, architecture, variant } = image.config;
    if (options.platform && !platformMatches({ os, architecture, variant }, options.platform)) {
      throw new OciError(
        'INVALID_ARGUMENT',
        `${input} is an image for ${formatPlatform({ os, architecture, variant })}, not ${formatPlatform(options.platform)}`,
      );
    }
    return { location, store: location.store, ...image };
  } catch (err) {
    await location.close();
    throw err;
  }
}
