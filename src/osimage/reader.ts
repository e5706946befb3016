/**
 * The verifying reader of OS image artifacts (osimage-format.md, "What
 * Monogon's reader checks"). Integrity flows manifest digest → config
 * digest → chunk hashes: here the manifest and config are read and checked
 * field by field, decoded as the format's reader decodes them (go-json.ts);
 * payload-reader.ts then releases payload data only after the SHA-256 of
 * its hash chunk matched.
 */

import { checkBytes, checkCap, fetchAll } from '../content/fetch-all.js';
import type { ContentStore } from '../content/store.js';
import { manifestArtifactType } from '../copy/graph.js';
import { OciError } from '../errors.js';
import type { Descriptor, ImageManifest } from '../oci/descriptor.js';
import { MediaType } from '../oci/mediatypes.js';
import {
  chunkCount,
  MAX_HASH_CHUNK_SIZE,
  MAX_METADATA_SIZE,
  OS_IMAGE_ARTIFACT_TYPE,
  OS_IMAGE_CONFIG_MEDIA_TYPE,
  OS_IMAGE_FORMAT_VERSION,
  type OsImageConfig,
  type ProductInfo,
} from './format.js';
import { decodeAsGo, type GoStruct } from './go-json.js';

/** One payload of an OS image, as its config and manifest describe it. */
export interface OsImagePayload {
  index: number;
  name: string;
  /** Uncompressed size. */
  size: number;
  hashChunkSize: number;
  chunkHashes: string[];
  /** The manifest layer holding it. */
  layer: Descriptor;
  compression: 'zstd' | 'none';
}

/** A checked OS image: manifest and config bytes verified and validated. */
export interface OsImage {
  descriptor: Descriptor;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configBytes: Buffer;
  config: OsImageConfig;
  productInfo: ProductInfo;
  payloads: OsImagePayload[];
}

const hashRe = /^[A-Za-z0-9+/]{43}$/;

function invalid(where: string, what: string): OciError {
  return new OciError('INVALID_FORMAT', `${where}: ${what}`);
}

/** True when manifest bytes (or a parsed manifest) describe an OS image. */
export function isOsImageManifest(manifest: Buffer | Partial<ImageManifest>): boolean {
  try {
    const m = Buffer.isBuffer(manifest) ? (JSON.parse(manifest.toString('utf8')) as Partial<ImageManifest>) : manifest;
    return m.artifactType === OS_IMAGE_ARTIFACT_TYPE;
  } catch {
    return false;
  }
}

/**
 * The `artifactType` a layout's index.json gives a manifest: for OS images
 * the config media type, as the format's builder writes it
 * (osimage-format.md, "OCI image layout"); else the one the manifest names.
 */
export function indexArtifactType(bytes: Buffer): string | undefined {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as Partial<ImageManifest>;
    if (m.artifactType === OS_IMAGE_ARTIFACT_TYPE) return m.config?.mediaType;
  } catch {
    return undefined;
  }
  return manifestArtifactType(bytes);
}

/**
 * Validates an OS image manifest, decoded as the format reader decodes it:
 * field types, media type, sizes (none negative, as its NewImage requires),
 * artifactType and config media type. Returns the manifest as decoded.
 */
export function parseOsImageManifest(bytes: Buffer, where = 'OS image manifest'): ImageManifest {
  if (bytes.length > MAX_METADATA_SIZE) throw new OciError('SIZE_EXCEEDS_LIMIT', `${where} is larger than ${MAX_METADATA_SIZE} bytes`);
  const m = decodeAsGo(bytes, manifestType, where) as unknown as ImageManifest;
  m.layers ??= [];
  if (m.mediaType !== MediaType.ociManifest) throw invalid(where, `media type ${JSON.stringify(m.mediaType)}, expected ${MediaType.ociManifest}`);
  const sized: Array<[string, Descriptor]> = [['config', m.config], ...m.layers.map((l, i): [string, Descriptor] => [`layers[${i}]`, l])];
  for (const [field, d] of sized) {
    if (d.size < 0) throw invalid(where, `${field}.size ${d.size} is negative`);
    if (!Number.isSafeInteger(d.size)) throw invalid(where, `${field}.size ${d.size} is too large`);
  }
  if (m.artifactType !== OS_IMAGE_ARTIFACT_TYPE) throw invalid(where, `artifactType ${JSON.stringify(m.artifactType)}, expected ${OS_IMAGE_ARTIFACT_TYPE}`);
  if (m.config.mediaType !== OS_IMAGE_CONFIG_MEDIA_TYPE) {
    throw invalid(where, `config media type ${JSON.stringify(m.config.mediaType)}, expected ${OS_IMAGE_CONFIG_MEDIA_TYPE}`);
  }
  if (m.config.size > MAX_METADATA_SIZE) {
    throw new OciError('SIZE_EXCEEDS_LIMIT', `${where}: config size ${m.config.size} is not between 0 and ${MAX_METADATA_SIZE}`);
  }
  return m;
}

/**
 * Validates a config against its manifest, decoded as the format reader
 * decodes it (every field of the type format.ts gives it); returns it as
 * decoded and the payloads in layer order.
 */
export function parseOsImageConfig(bytes: Buffer, manifest: ImageManifest, where = 'OS image config'): { config: OsImageConfig; payloads: OsImagePayload[] } {
  const c = decodeAsGo(bytes, configType, where) as unknown as OsImageConfig;
  c.payloads ??= [];
  if (c.format_version !== OS_IMAGE_FORMAT_VERSION) {
    throw invalid(where, `format_version ${JSON.stringify(c.format_version)} is not supported (only "${OS_IMAGE_FORMAT_VERSION}")`);
  }
  if (c.payloads.length !== manifest.layers.length) {
    throw invalid(where, `${c.payloads.length} payloads but the manifest has ${manifest.layers.length} layers`);
  }
  const names = new Set<string>();
  const payloads = c.payloads.map((p, i): OsImagePayload => {
    const at = `${where}: payloads[${i}]`;
    if (p.name === '') throw invalid(at, 'has no name');
    if (names.has(p.name)) throw invalid(at, `payload name "${p.name}" is used twice`);
    names.add(p.name);
    if (!Number.isSafeInteger(p.size) || p.size < 0) throw invalid(at, `size ${p.size} is not a non-negative integer`);
    if (p.hash_chunk_size <= 0 || p.hash_chunk_size > MAX_HASH_CHUNK_SIZE) {
      throw invalid(at, `hash_chunk_size ${p.hash_chunk_size} is not in 1..${MAX_HASH_CHUNK_SIZE}`);
    }
    const hashes = p.chunk_hashes_sha256 ?? [];
    const want = chunkCount(p.size, p.hash_chunk_size);
    if (hashes.length !== want) throw invalid(at, `${hashes.length} chunk hashes, expected ${want} for ${p.size} bytes in chunks of ${p.hash_chunk_size}`);
    hashes.forEach((h, k) => {
      if (!hashRe.test(h)) throw invalid(at, `chunk hash ${k} is not 43 characters of unpadded base64`);
    });
    const layer = manifest.layers[i]!;
    const compression = layer.mediaType === MediaType.zstd ? 'zstd' : layer.mediaType === MediaType.octetStream ? 'none' : undefined;
    if (!compression) throw invalid(at, `layer media type ${layer.mediaType} is neither ${MediaType.octetStream} nor ${MediaType.zstd}`);
    if (compression === 'none' && layer.size !== p.size) throw invalid(at, `uncompressed layer is ${layer.size} bytes, the payload ${p.size}`);
    return { index: i, name: p.name, size: p.size, hashChunkSize: p.hash_chunk_size, chunkHashes: hashes, layer, compression };
  });
  return { config: c, payloads };
}

/*
 * The Go types Monogon's reader decodes manifest and config into: what
 * decoding them refuses (go-json.ts), this reader refuses.
 */
/** image-spec v1 Platform. */
const platformType: GoStruct = {
  fields: { architecture: 'string', os: 'string', 'os.version': 'string', 'os.features': { slice: 'string' }, variant: 'string' },
  omitEmpty: ['os.version', 'os.features', 'variant'],
};
/** image-spec v1 Descriptor. */
const descriptorType: GoStruct = {
  fields: {
    mediaType: 'string',
    digest: 'string',
    size: 'int64',
    urls: { slice: 'string' },
    annotations: { map: 'string' },
    data: 'bytes',
    platform: { ptr: platformType },
    artifactType: 'string',
  },
  omitEmpty: ['urls', 'annotations', 'data', 'platform', 'artifactType'],
};
/** image-spec v1 Manifest, as the format reader's NewImage decodes it. */
const manifestType: GoStruct = {
  fields: {
    schemaVersion: 'int64',
    mediaType: 'string',
    artifactType: 'string',
    config: descriptorType,
    layers: { slice: descriptorType },
    subject: { ptr: descriptorType },
    annotations: { map: 'string' },
  },
  omitEmpty: ['mediaType', 'artifactType', 'subject', 'annotations'],
};
/** osimage Config (format.ts), as the format reader decodes it. */
const configType: GoStruct = {
  fields: {
    format_version: 'string',
    product_info: {
      fields: {
        id: 'string',
        name: 'string',
        version: 'string',
        variant: 'string',
        commit_hash: 'string',
        commit_date: 'string',
        build_tree_dirty: 'bool',
        components: { slice: { fields: { id: 'string', version: 'string' } } },
      },
      omitEmpty: ['components'],
    },
    payloads: { slice: { fields: { name: 'string', size: 'int64', hash_chunk_size: 'int64', chunk_hashes_sha256: { slice: 'string' } } } },
  },
};

/**
 * Reads and checks an OS image's manifest and config from a store.
 * `manifestBytes`: the manifest, when the caller has read it already; it is
 * then not read a second time, only held to `desc` again (SIZE_MISMATCH,
 * DIGEST_MISMATCH).
 */
export async function readOsImage(store: ContentStore, desc: Descriptor, manifestBytes?: Buffer): Promise<OsImage> {
  const what = `manifest ${desc.digest}`;
  if (desc.mediaType !== MediaType.ociManifest) throw invalid(what, `media type ${desc.mediaType}, an OS image is an ${MediaType.ociManifest}`);
  if (manifestBytes) {
    checkCap(desc, MAX_METADATA_SIZE, what);
    checkBytes(desc, manifestBytes, what);
  } else manifestBytes = await fetchAll(store, desc, { cap: MAX_METADATA_SIZE, what });
  const manifest = parseOsImageManifest(manifestBytes, what);
  const configBytes = await fetchAll(store, manifest.config, { cap: MAX_METADATA_SIZE, what: `config ${manifest.config.digest}` });
  const { config, payloads } = parseOsImageConfig(configBytes, manifest, `config ${manifest.config.digest}`);
  return { descriptor: desc, manifestBytes, manifest, configBytes, config, productInfo: config.product_info, payloads };
}

/** Finds a payload by name; NOT_FOUND lists the names there are. */
export function findPayload(image: OsImage, name: string): OsImagePayload {
  const p = image.payloads.find((x) => x.name === name);
  if (!p) throw new OciError('NOT_FOUND', `no payload "${name}" in the image (payloads: ${image.payloads.map((x) => x.name).join(', ') || 'none'})`);
  return p;
}
