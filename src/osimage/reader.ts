/**
 * The verifying reader of OS image artifacts (osimage-format.md, "What
 * Monogon's reader checks"). Integrity flows manifest digest → config
 * digest → chunk hashes: the manifest and config are checked field by field,
 * and payload data is released to the caller only after the SHA-256 of its
 * hash chunk matched. Payloads are read as streams — raw for
 * `application/octet-stream`, frame by frame for `application/zstd`
 * (codec/zstd-stream.ts) — so memory stays bounded by one chunk plus one frame.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { OciError, isOciError, InterruptedError } from '../errors.js';
import type { ContentStore } from '../content/store.js';
import { fetchAll } from '../content/fetch-all.js';
import type { Descriptor, ImageManifest } from '../oci/descriptor.js';
import { decodeUtf8AsGo, wellFormed } from '../oci/json.js';
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
import { decodeZstdStream } from '../codec/zstd-stream.js';

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
 * The format's reader decodes manifest and config with Go's encoding/json
 * into typed structs, and what that decoding refuses, it refuses: a value
 * of the wrong JSON type for its field (null leaves a field as it was and
 * empties a list, map or pointer), an integer field written with a
 * fraction or exponent (`24.0`, `2.4e1`) or outside int64, a []byte that is
 * not padded base64, nesting deeper than 10000. Keys the structs do not
 * name are ignored; a key matches a field regardless of case (Go's folding,
 * where `ſ` is `s` and the Kelvin sign `k`); a repeated key decodes again
 * into what the first one left (objects merge, list elements are reused).
 * JSON.parse keeps neither number literals nor repeated keys, so the text
 * is parsed here into a tree that keeps both.
 */

type JsonNode =
  | { t: 'object'; entries: Array<[string, JsonNode]> }
  | { t: 'array'; items: JsonNode[] }
  | { t: 'string'; v: string }
  | { t: 'number'; raw: string }
  | { t: 'bool'; v: boolean }
  | { t: 'null' };

/** Go's limit on nested arrays and objects. */
const MAX_JSON_DEPTH = 10000;
const numberRe = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const hexRe = /^[0-9a-fA-F]{4}$/;

class JsonSyntaxError extends Error {}

/** Parses JSON text (RFC 8259) into a tree keeping number literals and repeated keys; iterative, so depth costs no stack. */
function parseJsonTree(text: string): JsonNode {
  let pos = 0;
  const fail = (): never => {
    throw new JsonSyntaxError(`unexpected ${pos < text.length ? JSON.stringify(text[pos]) : 'end of input'} at character ${pos}`);
  };
  const ws = (): void => {
    for (let c = text.charCodeAt(pos); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++pos));
  };
  const string = (): string => {
    if (text[pos] !== '"') fail();
    const start = ++pos;
    let escaped = false;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        const e = text[pos + 1];
        if (e === 'u') {
          if (!hexRe.test(text.slice(pos + 2, pos + 6))) fail();
          pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          pos += 2;
        } else {
          pos++;
          fail();
        }
      } else if (c < 0x20 || Number.isNaN(c)) {
        fail();
      } else {
        pos++;
      }
    }
    const raw = text.slice(start, pos++);
    // Go decodes a lone surrogate escape (`\ud800`) to U+FFFD; raw text holds none (decoded from UTF-8).
    return escaped ? wellFormed(JSON.parse(`"${raw}"`) as string) : raw;
  };
  const key = (): string => {
    ws();
    const k = string();
    ws();
    if (text[pos++] !== ':') {
      pos--;
      fail();
    }
    return k;
  };
  type Open = { node: JsonNode & { t: 'object' | 'array' }; key: string };
  const stack: Open[] = [];
  let done: JsonNode | undefined;
  while (done === undefined) {
    ws();
    let value: JsonNode | undefined;
    const c = text[pos];
    if (c === '{' || c === '[') {
      pos++;
      const node: Open['node'] = c === '{' ? { t: 'object', entries: [] } : { t: 'array', items: [] };
      stack.push({ node, key: '' });
      if (stack.length > MAX_JSON_DEPTH) throw new JsonSyntaxError(`nested deeper than ${MAX_JSON_DEPTH} at character ${pos}`);
      ws();
      if (text[pos] === (c === '{' ? '}' : ']')) {
        pos++;
        stack.pop();
        value = node;
      } else if (c === '{') {
        stack[stack.length - 1]!.key = key();
        continue;
      } else {
        continue;
      }
    } else if (c === '"') {
      value = { t: 'string', v: string() };
    } else if (text.startsWith('true', pos) || text.startsWith('false', pos) || text.startsWith('null', pos)) {
      const word = text[pos] === 't' ? 'true' : text[pos] === 'f' ? 'false' : 'null';
      pos += word.length;
      value = word === 'null' ? { t: 'null' } : { t: 'bool', v: word === 'true' };
    } else {
      numberRe.lastIndex = pos;
      const m = numberRe.exec(text);
      if (!m) fail();
      pos += m![0].length;
      value = { t: 'number', raw: m![0] };
    }
    // Hand the value to the containers it completes.
    while (value !== undefined) {
      const open = stack[stack.length - 1];
      if (!open) {
        done = value;
        break;
      }
      if (open.node.t === 'object') open.node.entries.push([open.key, value]);
      else open.node.items.push(value);
      value = undefined;
      ws();
      const next = text[pos++];
      if (next === ',') {
        if (open.node.t === 'object') open.key = key();
      } else if (next === (open.node.t === 'object' ? '}' : ']')) {
        stack.pop();
        value = open.node;
      } else {
        pos--;
        fail();
      }
    }
  }
  ws();
  if (pos < text.length) fail();
  return done;
}

/** A Go type, as encoding/json decodes into it. */
type GoType = 'string' | 'bool' | 'int64' | 'bytes' | { slice: GoType } | { map: GoType } | { ptr: GoType } | GoStruct;
/** A struct: JSON names of its fields, and those left out of the decoded object when empty (omitempty, omitzero). */
interface GoStruct {
  fields: Record<string, GoType>;
  omitEmpty?: readonly string[];
}

const platformType: GoStruct = {
  fields: { architecture: 'string', os: 'string', 'os.version': 'string', 'os.features': { slice: 'string' }, variant: 'string' },
  omitEmpty: ['os.version', 'os.features', 'variant'],
};
/** image-spec v1 Descriptor. */
const descriptorType: GoStruct = {
  fields: {
    mediaType: 'string', digest: 'string', size: 'int64', urls: { slice: 'string' }, annotations: { map: 'string' },
    data: 'bytes', platform: { ptr: platformType }, artifactType: 'string',
  },
  omitEmpty: ['urls', 'annotations', 'data', 'platform', 'artifactType'],
};
/** image-spec v1 Manifest, as the format reader's NewImage decodes it. */
const manifestType: GoStruct = {
  fields: {
    schemaVersion: 'int64', mediaType: 'string', artifactType: 'string', config: descriptorType,
    layers: { slice: descriptorType }, subject: { ptr: descriptorType }, annotations: { map: 'string' },
  },
  omitEmpty: ['mediaType', 'artifactType', 'subject', 'annotations'],
};
/** osimage Config (format.ts), as the format reader decodes it. */
const configType: GoStruct = {
  fields: {
    format_version: 'string',
    product_info: {
      fields: {
        id: 'string', name: 'string', version: 'string', variant: 'string', commit_hash: 'string', commit_date: 'string',
        build_tree_dirty: 'bool', components: { slice: { fields: { id: 'string', version: 'string' } } },
      },
      omitEmpty: ['components'],
    },
    payloads: { slice: { fields: { name: 'string', size: 'int64', hash_chunk_size: 'int64', chunk_hashes_sha256: { slice: 'string' } } } },
  },
};

const isStruct = (t: GoType): t is GoStruct => typeof t === 'object' && 'fields' in t;

function zeroOf(t: GoType): unknown {
  if (t === 'string') return '';
  if (t === 'bool') return false;
  if (t === 'int64') return 0;
  if (isStruct(t)) return Object.fromEntries(Object.entries(t.fields).map(([k, f]) => [k, zeroOf(f)]));
  return null;
}

/** Go's key folding for matching field names: ASCII case, plus `ſ` → S and the Kelvin sign → K. */
function foldName(s: string): string {
  return s.replace(/[a-z\u017f\u212a]/g, (c) => (c === '\u017f' ? 'S' : c === '\u212a' ? 'K' : c.toUpperCase()));
}

function fieldFor(t: GoStruct, key: string): string | undefined {
  if (Object.hasOwn(t.fields, key)) return key;
  const folded = foldName(key);
  return Object.keys(t.fields).find((f) => foldName(f) === folded);
}

const kindOf = (n: JsonNode): string => (n.t === 'object' ? 'an object' : n.t === 'array' ? 'an array' : n.t === 'bool' ? 'a boolean' : `a ${n.t}`);
const intRe = /^-?(?:0|[1-9]\d*)$/;
const base64Re = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Decodes `node` into a value of type `t` that holds `current`, as encoding/json does; `fail` gets the field path and what is wrong. */
function decodeGo(node: JsonNode, t: GoType, current: unknown, path: string, fail: (what: string) => never): unknown {
  if (node.t === 'null') return t === 'string' || t === 'bool' || t === 'int64' || isStruct(t) ? current : null;
  const expect = (kind: JsonNode['t'], what: string): void => {
    if (node.t !== kind) fail(`${path} must be ${what}, not ${kindOf(node)}`);
  };
  if (t === 'string') {
    expect('string', 'a string');
    return (node as { v: string }).v;
  }
  if (t === 'bool') {
    expect('bool', 'true or false');
    return (node as { v: boolean }).v;
  }
  if (t === 'int64') {
    expect('number', 'an integer');
    const raw = (node as { raw: string }).raw;
    if (!intRe.test(raw)) fail(`${path} must be an integer, not ${raw}`);
    if (raw.length > 15 && (BigInt(raw) < INT64_MIN || BigInt(raw) > INT64_MAX)) fail(`${path} ${raw} does not fit in a signed 64-bit integer`);
    return Number(raw);
  }
  if (t === 'bytes') {
    if (node.t === 'string') {
      if (!base64Re.test(node.v.replace(/[\r\n]/g, ''))) fail(`${path} is not padded base64`);
      return node.v;
    }
    expect('array', 'a base64 string');
    const bytes = (node as { items: JsonNode[] }).items.map((b, i) => {
      if (b.t === 'null') return 0;
      if (b.t !== 'number' || !/^(?:0|[1-9]\d*)$/.test(b.raw) || Number(b.raw) > 255) fail(`${path}[${i}] must be a byte (0 to 255)`);
      return Number((b as { raw: string }).raw);
    });
    return Buffer.from(bytes).toString('base64');
  }
  if (isStruct(t)) {
    expect('object', 'an object');
    const out = { ...((current ?? zeroOf(t)) as Record<string, unknown>) };
    for (const [key, value] of (node as { entries: Array<[string, JsonNode]> }).entries) {
      const name = fieldFor(t, key);
      if (name !== undefined) out[name] = decodeGo(value, t.fields[name]!, out[name], path ? `${path}.${name}` : name, fail);
    }
    return out;
  }
  if ('ptr' in t) return decodeGo(node, t.ptr, current ?? zeroOf(t.ptr), path, fail);
  if ('slice' in t) {
    expect('array', 'an array');
    const prev = Array.isArray(current) ? current : [];
    return (node as { items: JsonNode[] }).items.map((item, i) => decodeGo(item, t.slice, i < prev.length ? prev[i] : zeroOf(t.slice), `${path}[${i}]`, fail));
  }
  expect('object', 'an object');
  const out = new Map(Object.entries((current ?? {}) as Record<string, unknown>));
  for (const [key, value] of (node as { entries: Array<[string, JsonNode]> }).entries) {
    out.set(key, decodeGo(value, t.map, zeroOf(t.map), `${path}[${JSON.stringify(key)}]`, fail));
  }
  return Object.fromEntries(out);
}

/** Drops the empty fields Go would leave out when writing the value (empty string, nil list, map or pointer). */
function withoutEmpty(v: unknown, t: GoType): unknown {
  if (v === null || typeof t !== 'object') return v;
  if ('ptr' in t) return withoutEmpty(v, t.ptr);
  if ('slice' in t) return (v as unknown[]).map((x) => withoutEmpty(x, t.slice));
  if ('map' in t) return v;
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(t.fields)) {
    const x = (v as Record<string, unknown>)[k];
    if (t.omitEmpty?.includes(k) && (x === '' || x === null)) continue;
    out[k] = withoutEmpty(x, f);
  }
  return out;
}

/** Decodes JSON bytes into a struct the way the format reader does; INVALID_FORMAT names the field. */
function decodeAsGo(bytes: Buffer, t: GoStruct, where: string): Record<string, unknown> {
  let tree: JsonNode;
  try {
    tree = parseJsonTree(decodeUtf8AsGo(bytes));
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw invalid(where, `not valid JSON (${err.message})`);
    throw err;
  }
  if (tree.t !== 'object') throw invalid(where, 'not a JSON object');
  const fail = (what: string): never => {
    throw invalid(where, what);
  };
  return withoutEmpty(decodeGo(tree, t, zeroOf(t), '', fail), t) as Record<string, unknown>;
}

/** Reads and checks an OS image's manifest and config from a store. */
export async function readOsImage(store: ContentStore, desc: Descriptor): Promise<OsImage> {
  if (desc.mediaType !== MediaType.ociManifest) {
    throw invalid(`manifest ${desc.digest}`, `media type ${desc.mediaType}, an OS image is an ${MediaType.ociManifest}`);
  }
  const manifestBytes = await fetchAll(store, desc, { cap: MAX_METADATA_SIZE, what: `manifest ${desc.digest}` });
  const manifest = parseOsImageManifest(manifestBytes, `manifest ${desc.digest}`);
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
 * The payloads of an image by blob digest, in image order. Identical
 * partitions share one blob (same bytes, same digest), which is read once
 * and checked against every payload it holds ({@link checkPayloadsFrom}).
 */
export function payloadsByBlob(payloads: readonly OsImagePayload[]): Map<string, OsImagePayload[]> {
  const byBlob = new Map<string, OsImagePayload[]>();
  for (const p of payloads) {
    const list = byBlob.get(p.layer.digest);
    if (list) list.push(p);
    else byBlob.set(p.layer.digest, [p]);
  }
  return byBlob;
}

/**
 * Checks every payload stored in one blob from a single pass over its bytes.
 * Identical partitions share a blob (same bytes, same digest), and each of
 * them has its own chunk hashes in the config: the blob is decoded once per
 * compression its layers name (layers of one digest could still name both
 * media types; each decoding is fed from the same pass) and the decoded
 * bytes are checked against every payload's hashes, in image order. All
 * payloads given must be stored in `blob` ({@link payloadsByBlob}).
 */
export async function checkPayloadsFrom(blob: AsyncIterable<Buffer>, payloads: readonly OsImagePayload[], options: ReadPayloadOptions = {}): Promise<PayloadVerification[]> {
  const drain = async (from: AsyncIterable<Buffer>, group: readonly OsImagePayload[]): Promise<void> => {
    for await (const _ of checkedChunks(from, group, options)) {
      // Data is dropped once its hash matched.
    }
  };
  const groups = (['zstd', 'none'] as const).map((c) => payloads.filter((p) => p.compression === c)).filter((g) => g.length > 0);
  if (groups.length <= 1) {
    await drain(blob, payloads);
    return payloads.map(verificationOf);
  }
  const feeds = groups.map(() => new PassThrough({ highWaterMark: 1 << 20 }));
  let first: unknown;
  const checks = groups.map((group, i) => drain(feeds[i]!, group).catch((err: unknown) => {
    first ??= err;
    throw err;
  }));
  const all = Promise.all(checks);
  // Rejects when a check fails, so the feeding waiting for 'drain' is released.
  const failed = all.then(() => new Promise<never>(() => undefined));
  failed.catch(() => undefined);
  try {
    for await (const c of blob) {
      const full = feeds.filter((f) => !f.write(c));
      if (full.length > 0) await Promise.race([Promise.all(full.map((f) => once(f, 'drain'))), failed]);
    }
    for (const f of feeds) f.end();
  } catch (err) {
    // The checks name payload and offset of a failing blob stream; a failed check is its own cause.
    for (const f of feeds) f.destroy(err as Error);
    await Promise.allSettled(checks);
    throw first ?? err;
  }
  await all;
  return payloads.map(verificationOf);
}

/**
 * Decodes a blob once and checks the decoded bytes against each payload's
 * chunk hashes, payloads in image order; yields the first payload's chunks,
 * each once its hash matched. Identical partitions (same size, chunk size
 * and chunk hashes) are hashed once; a mismatch names the first of them.
 */
async function* checkedChunks(blob: AsyncIterable<Buffer>, payloads: readonly OsImagePayload[], options: ReadPayloadOptions): AsyncGenerator<Buffer> {
  const lead = payloads[0];
  if (!lead) throw new OciError('INTERNAL', 'no payload to check');
  if (payloads.some((p) => p.compression !== lead.compression || p.layer.digest !== lead.layer.digest)) {
    throw new OciError('INTERNAL', 'payloads checked together must share their blob and its compression');
  }
  const verifiers = new Map<string, ChunkVerifier>();
  for (const p of payloads) {
    const key = `${p.size}/${p.hashChunkSize}/${p.chunkHashes.join(',')}`;
    if (!verifiers.has(key)) verifiers.set(key, new ChunkVerifier(p));
  }
  const [leadVerifier, ...others] = [...verifiers.values()] as [ChunkVerifier, ...ChunkVerifier[]];
  const label = payloads.length === 1 ? `payload "${lead.name}"` : `payloads ${payloads.map((p) => `"${p.name}"`).join(', ')}`;
  const where = (): string => `chunk ${Math.floor(leadVerifier.verified / lead.hashChunkSize)} at byte offset ${leadVerifier.verified}`;
  try {
    // A 0-byte zstd blob is how Monogon's builder stores an empty payload.
    const decoded: AsyncIterable<Buffer> = lead.compression === 'zstd' ? decodeZstdStream(blob, { allowEmptyBlob: payloads.every((p) => p.size === 0) }) : blob;
    for await (const data of decoded) {
      if (options.signal?.aborted) throw new OciError('ABORTED', `reading ${label} was interrupted`);
      for (const chunk of leadVerifier.push(data)) {
        options.onProgress?.(leadVerifier.verified);
        yield chunk;
      }
      for (const v of others) {
        for (const _ of v.push(data)) void _;
      }
    }
    for (const v of verifiers.values()) v.end();
  } catch (err) {
    if (err instanceof ChunkHashMismatchError || (isOciError(err) && payloads.some((p) => err.message.startsWith(`payload "${p.name}"`)))) throw err;
    if (isOciError(err)) {
      throw new OciError(err.code, `${label} (blob ${lead.layer.digest}), ${where()}: ${err.message}`, { cause: err, hint: err.hint });
    }
    throw new OciError('INPUT_UNREADABLE', `${label} (blob ${lead.layer.digest}), ${where()}: ${(err as Error).message}`, { cause: err });
  }
}

/** What checking a payload's every chunk established. */
export function verificationOf(p: OsImagePayload): PayloadVerification {
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
