/**
 * Reading the payloads of a checked OS image (osimage-format.md, "What
 * Monogon's reader checks"): payload data is released to the caller only
 * after the SHA-256 of its hash chunk matched the config (reader.ts checked
 * the config against the manifest digest). Payloads are read as streams —
 * raw for `application/octet-stream`, frame by frame for `application/zstd`
 * (codec/zstd-stream.ts) — so memory stays bounded by one chunk plus one frame.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { decodeZstdStream } from '../codec/zstd-stream.js';
import type { ContentStore } from '../content/store.js';
import { isOciError, OciError } from '../errors.js';
import { encodeChunkHash } from './format.js';
import { findPayload, type OsImage, type OsImagePayload } from './reader.js';

/** A chunk whose data does not match its hash (exit code 5). */
export class ChunkHashMismatchError extends OciError {
  constructor(
    readonly payload: string,
    readonly chunkIndex: number,
    readonly offset: number,
    expected: string,
    actual: string,
  ) {
    super(
      'CHUNK_HASH_MISMATCH',
      `payload "${payload}": chunk ${chunkIndex} at byte offset ${offset} does not match its hash (expected ${expected}, got ${actual})`,
    );
  }
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
      throw new OciError(
        'SIZE_MISMATCH',
        `payload "${this.payload.name}": the stream ended at byte ${offset} of ${this.payload.size} (in chunk ${this.index} at byte offset ${this.index * this.payload.hashChunkSize})`,
      );
    }
  }
}

/** Options of {@link readPayload}. */
export interface ReadPayloadOptions {
  signal?: AbortSignal;
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
export async function checkPayloadsFrom(
  blob: AsyncIterable<Buffer>,
  payloads: readonly OsImagePayload[],
  options: ReadPayloadOptions = {},
): Promise<PayloadVerification[]> {
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
  const checks = groups.map((group, i) =>
    drain(feeds[i]!, group).catch((err: unknown) => {
      first ??= err;
      throw err;
    }),
  );
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
      yield* leadVerifier.push(data);
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
