/**
 * Builds an OS image artifact (shared/spec/osimage-format.md) into any
 * ContentStore, streaming: each payload is read once, chunk-hashed and
 * compressed on the way to the store; then the config and the manifest are
 * stored. Tagging (and committing a layout) is left to the caller, so a tag
 * is only ever written after everything it points to.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { readFileFrames } from '../codec/frames.js';
import { pushReported } from '../content/capabilities.js';
import type { ContentStore, StoredBlob } from '../content/store.js';
import { fsError, InterruptedError, OciError } from '../errors.js';
import type { Descriptor, ImageManifest } from '../oci/descriptor.js';
import { sha256Digest } from '../oci/digest.js';
import { canonicalJson, jsonMap } from '../oci/json.js';
import { Annotation, MediaType } from '../oci/mediatypes.js';
import { BufferPool } from '../util/buffer-pool.js';
import { formatSize } from '../util/size.js';
import { type CheckedOsImageBuild, checkOsImageBuild } from './build-checks.js';
import type { BuiltOsImage, BuiltPayload, OsImageBuildOptions, PayloadInput } from './build-options.js';
import {
  chunkCount,
  encodeChunkHash,
  MAX_METADATA_SIZE,
  OS_IMAGE_ARTIFACT_TYPE,
  OS_IMAGE_CONFIG_MEDIA_TYPE,
  OS_IMAGE_FORMAT_VERSION,
  type PayloadInfo,
  serializeConfig,
} from './format.js';
import { hashFileChunks } from './parallel-hash.js';
import { type EncodedPayload, encodePayload, type PayloadEncoding } from './payload.js';
import { contentKey, encodingSettings, type FileIdentity, fileIdentity, type PayloadCache, type PayloadCacheEntry } from './payload-cache.js';

/** What kind of file a stat describes, for messages. */
export { type CheckedOsImageBuild, checkOsImageBuild, checkPayloadInputs } from './build-checks.js';
export type { BuiltOsImage, BuiltPayload, OsImageBuildOptions, PayloadInput } from './build-options.js';

/** Streams the payloads into `store`, then stores the config and the manifest; `checked`: what checkOsImageBuild found, if it ran already. */
export async function buildOsImage(store: ContentStore, options: OsImageBuildOptions, checked?: CheckedOsImageBuild): Promise<BuiltOsImage> {
  const image = await buildOsImageBlobs(store, options, checked);
  const { digest, size, mediaType } = image.descriptor;
  await store.push({ mediaType, digest, size }, Readable.from([image.manifest]));
  options.progress?.({ type: 'manifest', digest, mediaType, size });
  return image;
}

/**
 * Streams the payloads into `store` and stores the config; the manifest is
 * made, not stored, for a caller that stores it its own way (a registry push
 * PUTs it under its tags, which stores it as well).
 */
export async function buildOsImageBlobs(store: ContentStore, options: OsImageBuildOptions, checked?: CheckedOsImageBuild): Promise<BuiltOsImage> {
  const { encoding, productInfo, stats } = checked ?? (await checkOsImageBuild(options));
  const titles = options.layerTitles ?? true;
  const limit = pLimit(options.jobs ?? 1);

  const built = await Promise.all(options.payloads.map((input, i) => limit(() => storePayload(store, input, stats[i]!, encoding, options))));

  const config = serializeConfig({ format_version: OS_IMAGE_FORMAT_VERSION, product_info: productInfo, payloads: built.map((b) => b.info) });
  if (config.length > MAX_METADATA_SIZE) {
    // Only when payloads grew after they were checked (a changed size is refused, so not expected).
    throw new OciError('USAGE', `the config is ${formatSize(config.length)}, more than the ${formatSize(MAX_METADATA_SIZE)} readers accept`, {
      hint: 'use a larger --hash-chunk-size',
    });
  }
  const configDescriptor: Descriptor = { mediaType: OS_IMAGE_CONFIG_MEDIA_TYPE, digest: sha256Digest(config), size: config.length };
  // Every blob-done has its blob-start, so that a consumer counting events sees each blob open and close.
  options.progress?.({ type: 'blob-start', id: 'config', name: 'config', total: config.length });
  const configExists = await store.exists(configDescriptor);
  // The store says whether the bytes went over the network (uploaded) or were written locally.
  const configStored = configExists
    ? { status: 'exists' as const, uploadedBytes: 0 }
    : await pushReported(store, configDescriptor, Readable.from([config]), { skipExistsCheck: true });
  options.progress?.({ type: 'blob-progress', id: 'config', bytes: config.length, total: config.length });
  options.progress?.({
    type: 'blob-done',
    id: 'config',
    name: 'config',
    digest: configDescriptor.digest,
    size: config.length,
    mediaType: OS_IMAGE_CONFIG_MEDIA_TYPE,
    status: configStored.status,
    uploadedBytes: configStored.uploadedBytes,
  });

  const layers: Descriptor[] = built.map(({ payload }) => {
    const d: Descriptor = { mediaType: payload.mediaType, digest: payload.digest, size: payload.blobSize };
    if (titles) d.annotations = { [Annotation.title]: payload.mediaType === MediaType.zstd ? `${payload.name}.zst` : payload.name };
    return d;
  });
  const manifestObj: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: OS_IMAGE_ARTIFACT_TYPE,
    config: configDescriptor,
    layers,
  };
  // A map, as the reference builder's map[string]string: keys sorted, so flag order does not change the digest.
  if (options.annotations && Object.keys(options.annotations).length > 0) manifestObj.annotations = jsonMap(options.annotations);
  const manifest = canonicalJson(manifestObj);
  const descriptor: Descriptor = {
    mediaType: MediaType.ociManifest,
    digest: sha256Digest(manifest),
    size: manifest.length,
    artifactType: OS_IMAGE_CONFIG_MEDIA_TYPE,
  };
  return { manifest, descriptor, config, configDescriptor, payloads: built.map((b) => b.payload) };
}

/** Reads a payload in frames, reporting progress and honouring the abort signal. */
async function* payloadFrames(input: PayloadInput, frameSize: number, total: number, options: OsImageBuildOptions, pool?: BufferPool): AsyncGenerator<Buffer> {
  let read = 0;
  for await (const f of readFileFrames(input.path, frameSize, pool)) {
    if (options.signal?.aborted) throw new InterruptedError('build interrupted; nothing was tagged');
    read += f.length;
    options.progress?.({ type: 'blob-progress', id: input.name, bytes: read, total });
    yield f;
  }
}

/**
 * Chunk hashes of a payload, read on every core without compressing (to
 * confirm a cached blob); undefined when the file changed since `st` was
 * taken. Only the first `st.size` bytes are hashed, so a file that grew
 * (or was rewritten) meanwhile would otherwise be confirmed by its old
 * prefix and pushed truncated: its size, mtime and ctime are checked again
 * once the hashes are in, and any change sends the payload down the normal
 * path, which reads to the end and reports the change.
 */
async function hashOnly(
  input: PayloadInput,
  encoding: Required<PayloadEncoding>,
  st: Stats,
  options: OsImageBuildOptions,
): Promise<EncodedPayload | undefined> {
  const total = st.size;
  const chunkHashes = await hashFileChunks(input.path, total, encoding.hashChunkSize);
  options.signal?.throwIfAborted();
  let now: Stats;
  try {
    now = await stat(input.path);
  } catch (err) {
    throw fsError(err, input.path, 'read');
  }
  if (now.size !== st.size || now.mtimeMs !== st.mtimeMs || now.ctimeMs !== st.ctimeMs || now.ino !== st.ino || now.dev !== st.dev) return undefined;
  options.progress?.({ type: 'blob-progress', id: input.name, bytes: total, total });
  return { size: total, hashChunkSize: encoding.hashChunkSize, chunkHashes, mediaType: MediaType.octetStream, frames: 0 };
}

/** The chunk hash of `length` bytes of `path` at `offset` (the first chunk by default), as the config spells chunk hashes. */
async function firstChunkHash(path: string, length: number, offset = 0): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return encodeChunkHash(createHash('sha256').update(buf.subarray(0, bytesRead)).digest());
  } catch (err) {
    throw fsError(err, path, 'read');
  } finally {
    await fh?.close();
  }
}

/**
 * The stored blob of an unchanged payload, found through the cache and
 * confirmed by its content. The file the cache saw (same identity) is
 * checked first: the store must still hold its blob, then the content must
 * hash as recorded. Otherwise entries of the same size (a rebuilt, copied
 * or touched file) are candidates: the content is hashed once and a blob
 * is reused only for a candidate with the very same chunk hashes that the
 * store holds. The file's new identity is then recorded too.
 */
async function reuseCached(
  store: ContentStore,
  input: PayloadInput,
  st: Stats,
  encoding: Required<PayloadEncoding>,
  settings: string,
  mediaType: string,
  options: OsImageBuildOptions,
): Promise<{ payload: BuiltPayload; enc: EncodedPayload } | undefined> {
  const cache = options.cache;
  if (!cache) return undefined;
  const held = (e: PayloadCacheEntry) => store.exists({ mediaType, digest: e.blobDigest, size: e.blobSize });
  const exact = await cache.lookup(st, settings);
  if (exact && !(await held(exact))) return undefined;
  // Taken before the file is read: what the entry records is the file as it was before that read.
  const identity = await fileIdentity(input.path);
  if (exact) {
    const trusted = await trustedEntry(cache, exact, identity, input, st, encoding, options);
    if (trusted)
      return {
        payload: {
          name: input.name,
          size: st.size,
          digest: exact.blobDigest,
          blobSize: exact.blobSize,
          mediaType,
          chunkCount: trusted.chunkHashes.length,
          reused: true,
        },
        enc: trusted,
      };
  }
  let candidates = exact ? [exact] : await cache.withSize(st.size, settings);
  if (!exact && candidates.length > 0 && st.size > 0) {
    // A changed payload of a known size (a rebuilt partition image) would be read twice, once here
    // and once to encode it: its first chunk rules most candidates out first.
    const first = await firstChunkHash(input.path, Math.min(st.size, encoding.hashChunkSize));
    candidates = candidates.filter((c) => c.firstChunk === undefined || c.firstChunk === first);
  }
  if (candidates.length === 0) return undefined;
  const enc = await hashOnly(input, encoding, st, options);
  if (!enc) return undefined;
  const key = contentKey(enc.size, enc.hashChunkSize, enc.chunkHashes);
  for (const c of candidates) {
    if (c.contentKey !== key || (c !== exact && !(await held(c)))) continue;
    await cache.record({
      ...c,
      dev: st.dev,
      ino: st.ino,
      size: st.size,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      firstChunk: enc.chunkHashes[0],
      ...nsIdentity(identity, st),
    });
    await cache.keepChunkHashes(key, enc.chunkHashes);
    return {
      payload: { name: input.name, size: enc.size, digest: c.blobDigest, blobSize: c.blobSize, mediaType, chunkCount: enc.chunkHashes.length, reused: true },
      enc,
    };
  }
  return undefined;
}

/** The nanosecond fields of an entry from `identity`, when it is the file `st` describes (else none: never trusted). */
function nsIdentity(identity: FileIdentity | undefined, st: Stats): Pick<PayloadCacheEntry, 'mtimeNs' | 'ctimeNs' | 'statAtNs'> {
  if (!identity || identity.dev !== st.dev || identity.ino !== st.ino || identity.size !== st.size)
    return { mtimeNs: undefined, ctimeNs: undefined, statAtNs: undefined };
  return { mtimeNs: identity.mtimeNs, ctimeNs: identity.ctimeNs, statAtNs: identity.statAtNs };
}

/**
 * The recorded encoding of a payload whose file the cache may trust by its
 * identity (see payload-cache.ts), without reading the file: its chunk
 * hashes as recorded, once its first and last chunks hash as recorded.
 */
async function trustedEntry(
  cache: PayloadCache,
  entry: PayloadCacheEntry,
  identity: FileIdentity | undefined,
  input: PayloadInput,
  st: Stats,
  encoding: Required<PayloadEncoding>,
  options: OsImageBuildOptions,
): Promise<EncodedPayload | undefined> {
  if (!cache.trusts(entry, identity) || identity!.size !== st.size) return undefined;
  const size = encoding.hashChunkSize;
  const hashes = await cache.chunkHashes(entry, size);
  if (!hashes || hashes.length !== chunkCount(st.size, size)) return undefined;
  if (st.size > 0) {
    const last = hashes.length - 1;
    if (hashes[0] !== (await firstChunkHash(input.path, Math.min(st.size, size)))) return undefined;
    if (last > 0 && hashes[last] !== (await firstChunkHash(input.path, st.size - last * size, last * size))) return undefined;
  }
  options.progress?.({ type: 'blob-progress', id: input.name, bytes: st.size, total: st.size });
  return { size: st.size, hashChunkSize: size, chunkHashes: hashes, mediaType: MediaType.octetStream, frames: 0 };
}

/** Stores one payload: reuses its blob when the cache and the content say it is unchanged, else encodes and streams it. */
async function storePayload(
  store: ContentStore,
  input: PayloadInput,
  st: Stats,
  encoding: Required<PayloadEncoding>,
  options: OsImageBuildOptions,
): Promise<{ payload: BuiltPayload; info: PayloadInfo }> {
  const mediaType = encoding.compression === 'zstd' ? MediaType.zstd : MediaType.octetStream;
  const settings = encodingSettings(encoding);
  const info = (enc: EncodedPayload): PayloadInfo => ({
    name: input.name,
    size: enc.size,
    hash_chunk_size: enc.hashChunkSize,
    chunk_hashes_sha256: enc.chunkHashes,
  });
  options.progress?.({ type: 'blob-start', id: input.name, name: input.name, total: st.size });
  const done = (payload: BuiltPayload, stored?: StoredBlob) => {
    options.progress?.({
      type: 'blob-done',
      id: input.name,
      name: input.name,
      digest: payload.digest,
      size: payload.blobSize,
      mediaType,
      status: payload.reused ? 'exists' : (stored?.status ?? 'written'),
      uploadedBytes: stored?.uploadedBytes ?? 0,
    });
    options.onPayloadDone?.(payload);
  };
  const reused = await reuseCached(store, input, st, encoding, settings, mediaType, options);
  if (reused) {
    done(reused.payload);
    return { payload: reused.payload, info: info(reused.enc) };
  }
  // Raw frames are the blob itself and stay with the store; compressed ones are reused.
  const encode = () => {
    const pool = encoding.compression === 'zstd' ? new BufferPool(encoding.frameSize) : undefined;
    return encodePayload(payloadFrames(input, encoding.frameSize, st.size, options, pool), encoding, pool);
  };
  // Taken before the file is read: what the entry records is the file as it was before that read.
  const identity = options.cache ? await fileIdentity(input.path) : undefined;
  let current = encode();
  const stored = await store.pushStream(current.blob, {
    mediaType,
    signal: options.signal,
    reopen: () => {
      current = encode();
      return current.blob;
    },
  });
  const enc = current.result();
  if (enc.size !== st.size) {
    throw new OciError('INPUT_UNREADABLE', `payload "${input.name}": ${input.path} changed size while it was read (${st.size} → ${enc.size} bytes)`);
  }
  const payload: BuiltPayload = {
    name: input.name,
    size: enc.size,
    digest: stored.digest,
    blobSize: stored.size,
    mediaType,
    chunkCount: enc.chunkHashes.length,
    reused: false,
  };
  const key = contentKey(enc.size, enc.hashChunkSize, enc.chunkHashes);
  await options.cache?.record({
    dev: st.dev,
    ino: st.ino,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    settings,
    contentKey: key,
    firstChunk: enc.chunkHashes[0],
    blobDigest: stored.digest,
    blobSize: stored.size,
    mediaType,
    ...nsIdentity(identity, st),
  });
  await options.cache?.keepChunkHashes(key, enc.chunkHashes);
  done(payload, stored);
  return { payload, info: info(enc) };
}
