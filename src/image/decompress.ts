/**
 * Reading layers and tar inputs whatever their compression, recognized by
 * magic bytes (media types are sometimes wrong): gzip through zlib, zstd
 * split into its frames by walking frame and block headers and decoded
 * frame by frame (memory is bounded by the largest frame, which for layers
 * oci-os writes is 8 MiB of tar), or plain tar.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { OciError } from '../errors.js';
import { zstdDecompress } from '../build/zstd.js';

/** Reads exact byte counts from a stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  private ended = false;
  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }
  /** Buffers at least `n` bytes; false when the stream ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
        this.chunks.push(b);
        this.buffered += b.length;
      }
    }
    return this.buffered >= n;
  }
  peek(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }
  /** Takes exactly `n` bytes as a list of pieces; throws on a short stream. */
  async take(n: number, what: string): Promise<Buffer[]> {
    if (!(await this.fill(n))) throw new OciError('INVALID_FORMAT', `${what}: the data ends in the middle of a zstd frame`);
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const c = this.chunks[0]!;
      if (c.length <= need) {
        out.push(c);
        this.chunks.shift();
        need -= c.length;
      } else {
        out.push(c.subarray(0, need));
        this.chunks[0] = c.subarray(need);
        need = 0;
      }
    }
    this.buffered -= n;
    return out;
  }
  async *rest(): AsyncGenerator<Buffer> {
    for (const c of this.chunks) yield c;
    this.chunks = [];
    this.buffered = 0;
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    }
  }
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

const ZSTD_MAGIC = 0xfd2fb528;

/** Splits a zstd stream into frames (skippable frames dropped) and decodes each. */
async function* zstdFrames(reader: ByteReader, what: string): AsyncGenerator<Buffer> {
  const byte = async (n: number) => Buffer.concat(await reader.take(n, what));
  while (await reader.fill(1)) {
    const magic = (await byte(4)).readUInt32LE(0);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      const size = (await byte(4)).readUInt32LE(0);
      await reader.take(size, what);
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw new OciError('INVALID_FORMAT', `${what}: not a zstd frame`);
    const fhd = (await byte(1))[0]!;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const didSize = [0, 1, 2, 4][fhd & 3]!;
    const fcsSize = [single ? 1 : 0, 2, 4, 8][fhd >> 6]!;
    const rest = await reader.take((single ? 0 : 1) + didSize + fcsSize, what);
    const parts: Buffer[] = [Buffer.alloc(4), Buffer.from([fhd]), ...rest];
    parts[0]!.writeUInt32LE(ZSTD_MAGIC);
    for (;;) {
      const bh = await byte(3);
      parts.push(bh);
      const v = bh[0]! | (bh[1]! << 8) | (bh[2]! << 16);
      const last = v & 1;
      const type = (v >> 1) & 3;
      const size = v >>> 3;
      if (type === 3) throw new OciError('INVALID_FORMAT', `${what}: reserved zstd block type`);
      parts.push(...(await reader.take(type === 1 ? 1 : size, what)));
      if (last) break;
    }
    if (checksum) parts.push(...(await reader.take(4, what)));
    yield await zstdDecompress(Buffer.concat(parts));
  }
}

/**
 * The uncompressed bytes of a gzip, zstd or plain stream. `what` names the
 * input in errors.
 */
export async function* decompress(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Buffer> {
  const reader = new ByteReader(source);
  try {
    await reader.fill(4);
    const head = reader.peek(4);
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      const gunzip = createGunzip();
      const src = Readable.from(reader.rest());
      src.on('error', (err) => gunzip.destroy(err));
      src.pipe(gunzip);
      try {
        for await (const c of gunzip as AsyncIterable<Buffer>) yield c;
      } catch (err) {
        if (err instanceof OciError) throw err;
        throw new OciError('INVALID_FORMAT', `${what}: broken gzip data: ${(err as Error).message}`, { cause: err });
      } finally {
        src.destroy();
      }
    } else if (head.length === 4 && head.readUInt32LE(0) === ZSTD_MAGIC) {
      try {
        yield* zstdFrames(reader, what);
      } catch (err) {
        if (err instanceof OciError) throw err;
        throw new OciError('INVALID_FORMAT', `${what}: broken zstd data: ${(err as Error).message}`, { cause: err });
      }
    } else {
      yield* reader.rest();
    }
  } finally {
    await reader.close();
  }
}
