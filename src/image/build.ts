/**
 * Building a container image (image-spec manifest.md, config.md) into any
 * ContentStore: the base's layers are reused by digest (copied, mounted or
 * found present) while new layers stream from directories and tar files;
 * then the config, and the manifest with the tags asked for, last, so a tag
 * only ever points at a complete image. Committing a layout is the caller's.
 */
import { Readable } from 'node:stream';
import { pushManifestTagged } from '../content/capabilities.js';
import type { ContentStore } from '../content/store.js';
import { type CopiedBlob, copyBlobs } from '../copy/blob.js';
import { OciError } from '../errors.js';
import type { Descriptor, ImageManifest, Platform } from '../oci/descriptor.js';
import { sha256Digest } from '../oci/digest.js';
import { canonicalJson, jsonMap } from '../oci/json.js';
import { MediaType } from '../oci/mediatypes.js';
import type { CompressionOptions } from './compress.js';
import { type ConfigOverrides, epochTimestamp, type HistoryEntry, type ImageConfig, mergeExecConfig, serializeConfig } from './config.js';
import { type BuiltLayer, checkLayerPath, layerDiffId, pushLayer } from './layer.js';
import { type ComponentLayer, type ComponentLayering, pushComponentLayers } from './layering/build-layers.js';
import type { NormalizeOptions } from './normalize.js';
import { defaultPlatform } from './platform.js';
import type { ImageSource } from './source.js';
import type { LeftOutPath } from './tree.js';

/** Options of {@link buildImage}. Zero values mean the defaults. */
export interface ImageBuildOptions extends CompressionOptions {
  /** Directories and tar files, one layer each, in order. */
  layers?: string[];
  /** The image to build on (see openImage). */
  base?: ImageSource;
  /** Platform of the image (default: the base's, else linux/amd64). */
  platform?: Platform;
  /** Changes to the inherited execution parameters. */
  overrides?: ConfigOverrides;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /** Ownership, timestamps (SOURCE_DATE_EPOCH) and excludes for every new layer. */
  normalize?: NormalizeOptions;
  /** Paths being written (the destination), left out of directory layers. */
  leaveOut?: LeftOutPath[];
  /** `components`: the first input (a directory) becomes many layers by what its files belong to (layering/). */
  layering?: ComponentLayering & { mode: 'components' };
  /** Base blobs copied at once (default 4). */
  jobs?: number;
  /** Tags to point at the manifest, set last, once everything it lists is stored. */
  tags?: readonly string[];
  signal?: AbortSignal;
}

/** A layer of the built image. */
export interface ImageLayer {
  digest: string;
  diffID: string;
  size: number;
  mediaType: string;
  /** `base` (reused from the base image) or the directory or tar file it was built from. */
  source: string;
  /** With --layering components: the components it holds, and whether it was kept from the previous image. */
  components?: string[];
  reused?: boolean;
  status?: ComponentLayer['status'];
  annotations?: Record<string, string>;
}

/** What {@link buildImage} stored. */
export interface BuiltImage {
  manifest: Buffer;
  descriptor: Descriptor;
  config: Buffer;
  configDescriptor: Descriptor;
  layers: ImageLayer[];
  /** Layer inputs not added because the base already has their DiffID. */
  skipped: string[];
  /** The base's blobs at the destination. */
  baseBlobs: CopiedBlob[];
  warnings: string[];
}

const dockerToOci: Record<string, string> = {
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar': MediaType.ociLayer,
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

/** A base layer's descriptor in the new (OCI) manifest: same bytes, OCI media type. */
function baseLayerDescriptor(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: dockerToOci[d.mediaType] ?? d.mediaType, digest: d.digest, size: d.size };
  if (d.urls) out.urls = d.urls;
  if (d.annotations) out.annotations = d.annotations;
  return out;
}

/** History of the new image: the base's plus one entry per new layer, when the base's history is consistent. */
function buildHistory(base: ImageConfig | undefined, added: number, epoch: number | undefined): HistoryEntry[] | undefined {
  const inherited = base?.history ?? [];
  const baseLayers = base?.rootfs.diff_ids.length ?? 0;
  // A history that does not account for every base layer cannot be extended truthfully.
  if (inherited.filter((h) => !h.empty_layer).length !== baseLayers) return undefined;
  const created = epoch === undefined ? undefined : epochTimestamp(epoch);
  const mine: HistoryEntry[] = Array.from({ length: added }, () => ({ ...(created ? { created } : {}), created_by: 'oci-os image build' }));
  const all = [...inherited, ...mine];
  return all.length > 0 ? all : undefined;
}

/** Builds an image into `store` and stores its config and manifest (untagged). */
export async function buildImage(store: ContentStore, options: ImageBuildOptions): Promise<BuiltImage> {
  const inputs = options.layers ?? [];
  if (inputs.length === 0 && !options.base) throw new OciError('USAGE', 'nothing to build: give --rootfs, --layer or --base');
  for (const path of inputs) await checkLayerPath(path);
  const base = options.base;
  const epoch = options.normalize?.sourceDateEpoch;
  const warnings: string[] = [];
  const layerOptions = { ...options, warnings };

  const baseLayers = base?.manifest.layers ?? [];
  const baseDiffIds = new Set(base?.config.rootfs.diff_ids ?? []);
  // Non-distributable (foreign) layers stay where their `urls` point; registries do not hold them.
  const copied = baseLayers.filter((l) => !/nondistributable|foreign/.test(l.mediaType));
  // Stopped early when a layer fails, so a failed build does not wait for a large base to finish copying.
  const stopCopy = new AbortController();
  const copySignal = options.signal ? AbortSignal.any([options.signal, stopCopy.signal]) : stopCopy.signal;
  const copying = base ? copyBlobs(base.store, store, copied, { jobs: options.jobs, signal: copySignal }) : Promise.resolve([]);
  copying.catch(() => undefined); // awaited below; a layer failure must not leave it unhandled

  const built: Array<BuiltLayer & Partial<ComponentLayer>> = [];
  const skipped: string[] = [];
  try {
    for (const [n, path] of inputs.entries()) {
      if (n === 0 && options.layering?.mode === 'components') {
        if ((await checkLayerPath(path)) !== 'directory') throw new OciError('INVALID_ARGUMENT', `${path}: --layering components needs a directory`);
        built.push(...(await pushComponentLayers(store, path, options.layering, layerOptions)));
        continue;
      }
      if (baseDiffIds.size > 0) {
        // One cheap hashing pass so a layer the base already has is neither compressed nor stored.
        const { diffID } = await layerDiffId(path, layerOptions);
        if (baseDiffIds.has(diffID)) {
          skipped.push(path);
          continue;
        }
      }
      built.push(await pushLayer(store, path, layerOptions));
    }
  } catch (err) {
    stopCopy.abort();
    await copying.catch(() => undefined);
    throw err;
  }
  const baseBlobs = await copying;

  const platform = options.platform ?? (base ? { os: base.config.os, architecture: base.config.architecture, variant: base.config.variant } : defaultPlatform);
  const baseConfig = base && base.config.os === platform.os && base.config.architecture === platform.architecture ? base.config : undefined;
  const config: ImageConfig = {
    ...(epoch !== undefined ? { created: epochTimestamp(epoch) } : {}),
    architecture: platform.architecture,
    os: platform.os,
    ...(baseConfig?.['os.version'] ? { 'os.version': baseConfig['os.version'] } : {}),
    ...(baseConfig?.['os.features'] ? { 'os.features': baseConfig['os.features'] } : {}),
    ...((platform.variant ?? baseConfig?.variant) ? { variant: platform.variant ?? baseConfig?.variant } : {}),
    config: mergeExecConfig(base?.config.config, options.overrides ?? {}),
    rootfs: { type: 'layers', diff_ids: [...(base?.config.rootfs.diff_ids ?? []), ...built.map((l) => l.diffID)] },
    history: buildHistory(base?.config, built.length, epoch),
  };
  if (!config.config) delete config.config;
  const configBytes = serializeConfig(config);
  const configDescriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: sha256Digest(configBytes), size: configBytes.length };
  options.signal?.throwIfAborted();
  await store.push(configDescriptor, Readable.from([configBytes]));

  const annotations = jsonMap<string>([]);
  if (base) {
    annotations['org.opencontainers.image.base.digest'] = base.descriptor.digest;
    if (base.location.kind === 'registry') annotations['org.opencontainers.image.base.name'] = base.location.location;
  }
  for (const [k, v] of Object.entries(options.annotations ?? {})) annotations[k] = v;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: [
      ...baseLayers.map(baseLayerDescriptor),
      ...built.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.annotations && { annotations: l.annotations }) })),
    ],
  };
  // A prototype-less map: any key is kept, and it is written with its keys sorted.
  if (Object.keys(annotations).length > 0) manifest.annotations = annotations;
  const manifestBytes = canonicalJson(manifest);
  const descriptor: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256Digest(manifestBytes), size: manifestBytes.length };
  await pushManifestTagged(store, descriptor, manifestBytes, options.tags ?? [], { signal: options.signal });

  const diffIds = config.rootfs.diff_ids;
  const layers: ImageLayer[] = manifest.layers.map((l, i) => ({
    digest: l.digest,
    size: l.size,
    mediaType: l.mediaType,
    diffID: diffIds[i]!,
    source: i < baseLayers.length ? 'base' : built[i - baseLayers.length]!.source,
    ...(i >= baseLayers.length &&
      built[i - baseLayers.length]!.components && {
        components: built[i - baseLayers.length]!.components,
        reused: built[i - baseLayers.length]!.reused,
        status: built[i - baseLayers.length]!.status,
        annotations: built[i - baseLayers.length]!.annotations,
      }),
  }));
  // The DiffID pass and the build pass read the same inputs: report each warning once.
  return { manifest: manifestBytes, descriptor, config: configBytes, configDescriptor, layers, skipped, baseBlobs, warnings: [...new Set(warnings)] };
}
