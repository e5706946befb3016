/**
 * The OS image artifact format (shared/spec/osimage-format.md): constants,
 * the config model, and its serialization. Field order here is the wire
 * order; it decides digests, so it must not change.
 */
import { OciError } from '../errors.js';
import { canonicalJson } from '../oci/json.js';

/** Manifest `artifactType` of an OS image. */
export const OS_IMAGE_ARTIFACT_TYPE = 'application/vnd.monogon.os.image.v1';
/** Media type of the OS image config blob. */
export const OS_IMAGE_CONFIG_MEDIA_TYPE = 'application/vnd.monogon.os.image.config.v1+json';
/** The only config `format_version` readers accept. */
export const OS_IMAGE_FORMAT_VERSION = '1';
/** Hash chunk size the builder writes by default: 1 MiB of uncompressed data. */
export const DEFAULT_HASH_CHUNK_SIZE = 1 << 20;
/** Largest hash chunk size a reader accepts. */
export const MAX_HASH_CHUNK_SIZE = 16 << 20;
/** Largest config or manifest blob a reader accepts. */
export const MAX_METADATA_SIZE = 50 << 20;

const payloadNameRe = /^[0-9A-Za-z-](?:[0-9A-Za-z._-]{0,78}[0-9A-Za-z_-])?$/;
const variantRe = /^[a-zA-Z0-9._-]*$/;

/** One component of a product (`product_info.components[]`). */
export interface Component {
  id: string;
  version: string;
}

/** `product_info` of the config. All fields are always written; `components` only when given. */
export interface ProductInfo {
  id: string;
  name: string;
  version: string;
  variant: string;
  commit_hash: string;
  commit_date: string;
  build_tree_dirty: boolean;
  components?: Component[];
}

/** One entry of `payloads[]`, in the same order as the manifest's layers. */
export interface PayloadInfo {
  name: string;
  /** Uncompressed size in bytes. */
  size: number;
  hash_chunk_size: number;
  /** SHA-256 per chunk, standard base64 without padding; `null` for an empty payload. */
  chunk_hashes_sha256: string[] | null;
}

/** The config blob. */
export interface OsImageConfig {
  format_version: string;
  product_info: ProductInfo;
  payloads: PayloadInfo[];
}

/** Throws INVALID_PAYLOAD_NAME unless `name` matches the format's payload name pattern. */
export function validatePayloadName(name: string): void {
  if (!payloadNameRe.test(name)) {
    throw new OciError(
      'INVALID_PAYLOAD_NAME',
      `invalid payload name "${name}": use 1-80 characters of letters, digits, '.', '_' and '-', not starting with '.' or '_' nor ending with '.'`,
    );
  }
}

/** Throws INVALID_ARGUMENT unless `size` is a valid hash chunk size. */
export function validateHashChunkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_HASH_CHUNK_SIZE) {
    throw new OciError('INVALID_ARGUMENT', `invalid hash chunk size ${size}: it must be more than 0 and at most 16MiB`);
  }
}

const productKeys = ['id', 'name', 'version', 'variant', 'commit_hash', 'commit_date', 'build_tree_dirty', 'components'] as const;

/**
 * Builds a ProductInfo from a loosely typed object (a `--product-info` file),
 * rejecting unknown keys and wrong types, then normalizes key order.
 */
export function parseProductInfo(input: unknown, source = 'product info'): Partial<ProductInfo> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new OciError('INVALID_PRODUCT_INFO', `${source}: expected a JSON object`);
  }
  const obj = input as Record<string, unknown>;
  const out: Partial<ProductInfo> = {};
  for (const key of Object.keys(obj)) {
    if (key === 'architecture') {
      // The reference product info files carry it; the reference builder ignores it (it is derived from the variant).
      if (typeof obj.architecture !== 'string' || obj.architecture !== variantArchitecture(String(obj.variant ?? ''))) {
        throw new OciError('INVALID_PRODUCT_INFO', `${source}: "architecture" must equal the first part of "variant" (it is derived from it and not stored)`);
      }
      continue;
    }
    if (!(productKeys as readonly string[]).includes(key)) {
      throw new OciError('INVALID_PRODUCT_INFO', `${source}: unknown key "${key}" (allowed: ${productKeys.join(', ')})`);
    }
    const v = obj[key];
    if (key === 'build_tree_dirty') {
      if (typeof v !== 'boolean') throw new OciError('INVALID_PRODUCT_INFO', `${source}: "build_tree_dirty" must be true or false`);
      out.build_tree_dirty = v;
    } else if (key === 'components') {
      out.components = parseComponents(v, source);
    } else {
      if (typeof v !== 'string') throw new OciError('INVALID_PRODUCT_INFO', `${source}: "${key}" must be a string`);
      (out as Record<string, unknown>)[key] = v;
    }
  }
  return out;
}

function parseComponents(v: unknown, source: string): Component[] {
  if (!Array.isArray(v)) throw new OciError('INVALID_PRODUCT_INFO', `${source}: "components" must be an array`);
  return v.map((c, i) => {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) {
      throw new OciError('INVALID_PRODUCT_INFO', `${source}: components[${i}] must be an object with "id" and "version"`);
    }
    const rec = c as Record<string, unknown>;
    for (const k of Object.keys(rec)) {
      if (k !== 'id' && k !== 'version') throw new OciError('INVALID_PRODUCT_INFO', `${source}: components[${i}] has unknown key "${k}"`);
    }
    if (typeof rec.id !== 'string' || typeof rec.version !== 'string') {
      throw new OciError('INVALID_PRODUCT_INFO', `${source}: components[${i}] needs string "id" and "version"`);
    }
    return { id: rec.id, version: rec.version };
  });
}

/** A complete ProductInfo in wire order, with defaults for missing fields; validates the variant. */
export function normalizeProductInfo(p: Partial<ProductInfo>): ProductInfo {
  const variant = p.variant ?? '';
  if (!variantRe.test(variant)) {
    throw new OciError('INVALID_PRODUCT_INFO', `invalid variant "${variant}": use only letters, digits, '.', '_' and '-' (it must fit in an OCI tag)`);
  }
  const out: ProductInfo = {
    id: p.id ?? '',
    name: p.name ?? '',
    version: p.version ?? '',
    variant,
    commit_hash: p.commit_hash ?? '',
    commit_date: p.commit_date ?? '',
    build_tree_dirty: p.build_tree_dirty ?? false,
  };
  // Like the reference builder (omitzero): omitted when absent, kept when given, even empty.
  if (p.components) {
    out.components = p.components.map((c) => ({ id: c.id, version: c.version }));
  }
  return out;
}

/** Serializes a config exactly as the format's builder does (tab indentation, fixed key order). */
export function serializeConfig(config: OsImageConfig): Buffer {
  const ordered: OsImageConfig = {
    format_version: config.format_version,
    product_info: normalizeProductInfo(config.product_info),
    payloads: config.payloads.map((p) => ({
      name: p.name,
      size: p.size,
      hash_chunk_size: p.hash_chunk_size,
      chunk_hashes_sha256: p.chunk_hashes_sha256 && p.chunk_hashes_sha256.length > 0 ? p.chunk_hashes_sha256 : null,
    })),
  };
  return canonicalJson(ordered);
}

/** Length of one encoded chunk hash (SHA-256, base64 without padding). */
const CHUNK_HASH_LENGTH = 43;

/**
 * The exact size of the config serializeConfig writes for payloads of these
 * sizes, known before a byte is hashed: every chunk hash is a string of the
 * same length, so one placeholder per payload is serialized and the others
 * are counted. Each further hash adds its quotes, a comma, a newline and the
 * four tabs of its depth (51 bytes). Lets a builder refuse a config over
 * {@link MAX_METADATA_SIZE} before it stores anything.
 */
export function predictConfigSize(productInfo: ProductInfo, payloads: ReadonlyArray<{ name: string; size: number; hashChunkSize: number }>): number {
  const placeholder = 'A'.repeat(CHUNK_HASH_LENGTH);
  const perExtraHash = Buffer.byteLength(`,\n\t\t\t\t"${placeholder}"`);
  let extra = 0;
  const config = serializeConfig({
    format_version: OS_IMAGE_FORMAT_VERSION,
    product_info: productInfo,
    payloads: payloads.map((p) => {
      const n = chunkCount(p.size, p.hashChunkSize);
      extra += Math.max(0, n - 1) * perExtraHash;
      return { name: p.name, size: p.size, hash_chunk_size: p.hashChunkSize, chunk_hashes_sha256: n > 0 ? [placeholder] : null };
    }),
  });
  return config.length + extra;
}

/** Number of hash chunks a payload of `size` bytes has. */
export function chunkCount(size: number, hashChunkSize: number): number {
  return Math.ceil(size / hashChunkSize);
}

/** The architecture part of a variant (`x86_64-debug` → `x86_64`). */
export function variantArchitecture(variant: string): string {
  return variant.split('-')[0] ?? '';
}

/** Chunk hash encoding: standard base64 without padding (43 characters for SHA-256). */
export function encodeChunkHash(digest: Buffer): string {
  return digest.toString('base64').replace(/=+$/, '');
}
