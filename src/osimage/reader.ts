/**
 * The verifying reader of OS image artifacts (osimage-format.md, "What
 * Monogon's reader checks"). Integrity flows manifest digest → config
 * digest → chunk hashes: the manifest and config are checked field by field,
 * and payload data is released to the caller only after the SHA-256 of its
 * hash chunk matched. Payloads are read as streams — raw for
 * `application/octet-stream`, frame by frame for `application/zstd`
 * (zstd-stream.ts) — so memory stays bounded by one chunk plus one frame.
 */
import { createHash } from 'node:crypto';
import { OciError, isOciError } from '../errors.js';
import type { ContentStore } from '../content/store.js';
import type { Descriptor, ImageManifest } from '../oci/descriptor.js';
import { MediaType } from '../oci/mediatypes.js';
import {
  chunkCount,
  encodeChunkHash,
  MAX_HASH_CHUNK_SIZE,
  MAX_METADATA_SIZE,
  OS_IMAGE_ARTIFACT_TYPE,
  OS_IMAGE_CONFIG_MEDIA_TYPE,
  OS_IMAGE_FORMAT_VERSION,
  type OsImageConfig,
  type ProductInfo,
} from './format.js';
import { decodeZstdStream } from './zstd-stream.js';

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

/** A chunk whose data does not match its hash (exit code 5). */
export class ChunkHashMismatchError extends OciError {
  constructor(readonly payload: string, readonly chunkIndex: number, readonly offset: number, expected: string, actual: string) {
    super('CHUNK_HASH_MISMATCH', `payload "${payload}": chunk ${chunkIndex} at byte offset ${offset} does not match its hash (expected ${expected}, got ${actual})`);
  }
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

/** Validates an OS image manifest: media type, artifactType, config media type and sizes. */
export function parseOsImageManifest(bytes: Buffer, where = 'OS image manifest'): ImageManifest {
  if (bytes.length > MAX_METADATA_SIZE) throw new OciError('SIZE_EXCEEDS_LIMIT', `${where} is larger than ${MAX_METADATA_SIZE} bytes`);
  let m: ImageManifest;
  try {
    m = JSON.parse(bytes.toString('utf8')) as ImageManifest;
  } catch {
    throw invalid(where, 'not valid JSON');
  }
  if (typeof m !== 'object' || m === null) throw invalid(where, 'not a JSON object');
  if (m.mediaType !== MediaType.ociManifest) throw invalid(where, `media type ${JSON.stringify(m.mediaType)}, expected ${MediaType.ociManifest}`);
  if (m.artifactType !== OS_IMAGE_ARTIFACT_TYPE) throw invalid(where, `artifactType ${JSON.stringify(m.artifactType)}, expected ${OS_IMAGE_ARTIFACT_TYPE}`);
  if (!m.config || m.config.mediaType !== OS_IMAGE_CONFIG_MEDIA_TYPE) {
    throw invalid(where, `config media type ${JSON.stringify(m.config?.mediaType)}, expected ${OS_IMAGE_CONFIG_MEDIA_TYPE}`);
  }
  if (!Number.isSafeInteger(m.config.size) || m.config.size < 0 || m.config.size > MAX_METADATA_SIZE) {
    throw new OciError('SIZE_EXCEEDS_LIMIT', `${where}: config size ${m.config.size} is not between 0 and ${MAX_METADATA_SIZE}`);
  }
  if (!Array.isArray(m.layers)) throw invalid(where, 'layers is not an array');
  return m;
}

/** Validates a config against its manifest; returns the payloads in layer order. */
export function parseOsImageConfig(bytes: Buffer, manifest: ImageManifest, where = 'OS image config'): { config: OsImageConfig; payloads: OsImagePayload[] } {
  let c: OsImageConfig;
  try {
    c = JSON.parse(bytes.toString('utf8')) as OsImageConfig;
  } catch {
    throw invalid(where, 'not valid JSON');
  }
  if (typeof c !== 'object' || c === null) throw invalid(where, 'not a JSON object');
  if (c.format_version !== OS_IMAGE_FORMAT_VERSION) {
    throw new OciError('UNSUPPORTED', `${where}: format_version ${JSON.stringify(c.format_version)} is not supported (only "${OS_IMAGE_FORMAT_VERSION}")`);
  }
  if (!Array.isArray(c.payloads)) throw invalid(where, 'payloads is not an array');
  if (c.payloads.length !== manifest.layers.length) {
    throw invalid(where, `${c.payloads.length} payloads but the manifest has ${manifest.layers.length} layers`);
  }
  const names = new Set<string>();
  const payloads = c.payloads.map((p, i): OsImagePayload => {
    const at = `${where}: payloads[${i}]`;
    if (typeof p?.name !== 'string' || p.name === '') throw invalid(at, 'has no name');
    if (names.has(p.name)) throw invalid(at, `payload name "${p.name}" is used twice`);
    names.add(p.name);
    if (!Number.isSafeInteger(p.size) || p.size < 0) throw invalid(at, `size ${p.size} is not a non-negative integer`);
    if (!Number.isSafeInteger(p.hash_chunk_size) || p.hash_chunk_size <= 0 || p.hash_chunk_size > MAX_HASH_CHUNK_SIZE) {
      throw invalid(at, `hash_chunk_size ${p.hash_chunk_size} is not in 1..${MAX_HASH_CHUNK_SIZE}`);
    }
    const hashes = p.chunk_hashes_sha256 ?? [];
    if (!Array.isArray(hashes)) throw invalid(at, 'chunk_hashes_sha256 is not an array');
    const want = chunkCount(p.size, p.hash_chunk_size);
    if (hashes.length !== want) throw invalid(at, `${hashes.length} chunk hashes, expected ${want} for ${p.size} bytes in chunks of ${p.hash_chunk_size}`);
    hashes.forEach((h, k) => {
      if (typeof h !== 'string' || !hashRe.test(h)) throw invalid(at, `chunk hash ${k} is not 43 characters of unpadded base64`);
    });
    const layer = manifest.layers[i]!;
    const compression = layer.mediaType === MediaType.zstd ? 'zstd' : layer.mediaType === MediaType.octetStream ? 'none' : undefined;
    if (!compression) throw new OciError('UNSUPPORTED', `${at}: layer media type ${layer.mediaType} is neither ${MediaType.octetStream} nor ${MediaType.zstd}`);
    if (compression === 'none' && layer.size !== p.size) throw invalid(at, `uncompressed layer is ${layer.size} bytes, the payload ${p.size}`);
    return { index: i, name: p.name, size: p.size, hashChunkSize: p.hash_chunk_size, chunkHashes: hashes, layer, compression };
  });
  return { config: c, payloads };
}

/** Reads a small blob (manifest, config) fully, verified by the store, refusing more than `cap` bytes. */
async function readSmall(store: ContentStore, desc: Descriptor, cap: number, what: string): Promise<Buffer> {
  if (desc.size > cap) throw new OciError('SIZE_EXCEEDS_LIMIT', `${what} is ${desc.size} bytes, more than ${cap}`);
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of await store.fetch(desc)) {
    n += (c as Buffer).length;
    if (n > cap) throw new OciError('SIZE_EXCEEDS_LIMIT', `${what} is more than ${cap} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts, n);
}

/** Reads and checks an OS image's manifest and config from a store. */
export async function readOsImage(store: ContentStore, desc: Descriptor): Promise<OsImage> {
  if (desc.mediaType !== MediaType.ociManifest) {
    throw invalid(`manifest ${desc.digest}`, `media type ${desc.mediaType}, an OS image is an ${MediaType.ociManifest}`);
  }
  const manifestBytes = await readSmall(store, desc, MAX_METADATA_SIZE, `manifest ${desc.digest}`);
  const manifest = parseOsImageManifest(manifestBytes, `manifest ${desc.digest}`);
  const configBytes = await readSmall(store, manifest.config, MAX_METADATA_SIZE, `config ${manifest.config.digest}`);
  const { config, payloads } = parseOsImageConfig(configBytes, manifest, `config ${manifest.config.digest}`);
  return { descriptor: desc, manifestBytes, manifest, configBytes, config, productInfo: config.product_info, payloads };
}

/** Finds a payload by name; NOT_FOUND lists the names there are. */
export function findPayload(image: OsImage, name: string): OsImagePayload {
  const p = image.payloads.find((x) => x.name === name);
  if (!p) throw new OciError('NOT_FOUND', `no payload "${name}" in the image (payloads: ${image.payloads.map((x) => x.name).join(', ') || 'none'})`);
  return p;
}

/**
 * Cuts a payload's uncompressed bytes into hash chunks and releases each
 * one only after its hash matched. Fails on a mismatch, on too many bytes
 * and (at end()) on too few.
 */
export class ChunkVerifier {
  private buf: Buffer;
  private filled = 0;
  private index = 0;
  /** Uncompressed bytes verified and released so far. */
  verified = 0;

  constructor(private readonly payload: OsImagePayload) {
    this.buf = Buffer.allocUnsafe(Math.min(payload.hashChunkSize, Math.max(payload.size, 1)));
  }

  private expectedLength(): number {
    return Math.min(this.payload.hashChunkSize, this.payload.size - this.index * this.payload.hashChunkSize);
  }

  private check(data: Buffer): Buffer {
    const actual = encodeChunkHash(createHash('sha256').update(data).digest());
    const expected = this.payload.chunkHashes[this.index]!;
    const offset = this.index * this.payload.hashChunkSize;
    if (actual !== expected) throw new ChunkHashMismatchError(this.payload.name, this.index, offset, expected, actual);
    this.index++;
    this.verified += data.length;
    return data;
  }

  /** Takes decoded bytes; yields each chunk they complete as soon as it is verified. */
  *push(data: Buffer): Generator<Buffer> {
    let off = 0;
    while (off < data.length) {
      if (this.index >= this.payload.chunkHashes.length) {
        throw new OciError('SIZE_MISMATCH', `payload "${this.payload.name}": more than the ${this.payload.size} bytes its config declares`);
      }
      const want = this.expectedLength();
      if (this.filled === 0 && data.length - off >= want) {
        yield this.check(data.subarray(off, off + want));
        off += want;
        continue;
      }
      const n = Math.min(want - this.filled, data.length - off);
      data.copy(this.buf, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled === want) {
        yield this.check(Buffer.from(this.buf.subarray(0, want)));
        this.filled = 0;
      }
    }
  }

  /** Fails unless every chunk arrived. */
  end(): void {
    if (this.index < this.payload.chunkHashes.length) {
      const offset = this.index * this.payload.hashChunkSize + this.filled;
      throw new OciError('SIZE_MISMATCH', `payload "${this.payload.name}": the stream ended at byte ${offset} of ${this.payload.size} (in chunk ${this.index} at byte offset ${this.index * this.payload.hashChunkSize})`);
    }
  }
}

/** Options of {@link readPayload}. */
export interface ReadPayloadOptions {
  signal?: AbortSignal;
  /** Called after each verified chunk with the uncompressed bytes verified so far. */
  onProgress?: (verifiedBytes: number) => void;
}

/**
 * Streams a payload's uncompressed bytes, each released only after its
 * chunk hash matched. The blob itself is fetched through the store, which
 * also verifies its digest and size. Errors name the payload and, where
 * known, the chunk index and byte offset.
 */
export async function* readPayload(store: ContentStore, image: OsImage, name: string, options: ReadPayloadOptions = {}): AsyncGenerator<Buffer> {
  const payload = findPayload(image, name);
  const blob = await store.fetch(payload.layer);
  try {
    yield* readPayloadFrom(blob, payload, options);
  } finally {
    blob.destroy();
  }
}

/**
 * Like {@link readPayload}, from the blob's bytes as they arrive (a download
 * on its way to disk, say), so the chunk check needs no second read.
 */
export function readPayloadFrom(blob: AsyncIterable<Buffer>, payload: OsImagePayload, options: ReadPayloadOptions = {}): AsyncGenerator<Buffer> {
  return checkedChunks(blob, [payload], options);
}

/**
 * Checks every payload stored in one blob from a single pass over its bytes.
 * Identical partitions share a blob (same bytes, same digest), and each of
 * them has its own chunk hashes in the config: the blob is decoded once and
 * the decoded bytes are checked against every payload's hashes, in image
 * order. All payloads given must use `blob` with the same compression.
 */
export async function checkPayloadsFrom(blob: AsyncIterable<Buffer>, payloads: readonly OsImagePayload[], options: ReadPayloadOptions = {}): Promise<PayloadVerification[]> {
  for await (const _ of checkedChunks(blob, payloads, options)) {
    // Data is dropped once its hash matched.
  }
  return payloads.map(verificationOf);
}

/**
 * Decodes a blob once and checks the decoded bytes against each payload's
 * chunk hashes, payloads in image order; yields the first payload's chunks,
 * each once its hash matched.
 */
async function* checkedChunks(blob: AsyncIterable<Buffer>, payloads: readonly OsImagePayload[], options: ReadPayloadOptions): AsyncGenerator<Buffer> {
  const lead = payloads[0];
  if (!lead) throw new OciError('INTERNAL', 'no payload to check');
  if (payloads.some((p) => p.compression !== lead.compression || p.layer.digest !== lead.layer.digest)) {
    throw new OciError('INTERNAL', 'payloads checked together must share their blob and its compression');
  }
  const verifiers = payloads.map((p) => new ChunkVerifier(p));
  const leadVerifier = verifiers[0]!;
  const label = payloads.length === 1 ? `payload "${lead.name}"` : `payloads ${payloads.map((p) => `"${p.name}"`).join(', ')}`;
  const where = (): string => `chunk ${Math.floor(leadVerifier.verified / lead.hashChunkSize)} at byte offset ${leadVerifier.verified}`;
  try {
    const decoded: AsyncIterable<Buffer> = lead.compression === 'zstd' ? decodeZstdStream(blob) : blob;
    for await (const data of decoded) {
      if (options.signal?.aborted) throw new OciError('ABORTED', `reading ${label} was interrupted`);
      for (const chunk of leadVerifier.push(data)) {
        options.onProgress?.(leadVerifier.verified);
        yield chunk;
      }
      for (const v of verifiers.slice(1)) {
        for (const _ of v.push(data)) void _;
      }
    }
    for (const v of verifiers) v.end();
  } catch (err) {
    if (err instanceof ChunkHashMismatchError || (isOciError(err) && payloads.some((p) => err.message.startsWith(`payload "${p.name}"`)))) throw err;
    if (isOciError(err)) {
      throw new OciError(err.code, `${label} (blob ${lead.layer.digest}), ${where()}: ${err.message}`, { cause: err, hint: err.hint });
    }
    throw new OciError('INPUT_UNREADABLE', `${label} (blob ${lead.layer.digest}), ${where()}: ${(err as Error).message}`, { cause: err });
  }
}

function verificationOf(p: OsImagePayload): PayloadVerification {
  return { name: p.name, size: p.size, chunks: p.chunkHashes.length, blobSize: p.layer.size, compression: p.compression };
}

/** Result of verifying one payload. */
export interface PayloadVerification {
  name: string;
  size: number;
  chunks: number;
  blobSize: number;
  compression: 'zstd' | 'none';
}

/** Reads a payload to the end, checking every chunk hash (and the blob digest, through the store). */
export async function verifyPayload(store: ContentStore, image: OsImage, name: string, options: ReadPayloadOptions = {}): Promise<PayloadVerification> {
  const p = findPayload(image, name);
  for await (const _ of readPayload(store, image, name, options)) {
    // Data is dropped once its hash matched.
  }
  return verificationOf(p);
}
