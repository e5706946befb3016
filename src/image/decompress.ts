/**
 * Reading layers and tar inputs whatever their compression, recognized by
 * magic bytes (media types are sometimes wrong): gzip through zlib, zstd
 * through the frame-by-frame decoder the OS image reader uses (memory is
 * bounded by the largest frame, which for layers oci-os writes is 8 MiB of
 * tar), or plain tar.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { OciError } from '../errors.js';
import { decodeZstdStream } from '../osimage/zstd-stream.js';

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
        yield* decodeZstdStream(reader.rest());
      } catch (err) {
        if (err instanceof OciError) throw new OciError(err.code, `${what}: ${err.message}`, { cause: err });
        throw new OciError('INVALID_FORMAT', `${what}: broken zstd data: ${(err as Error).message}`, { cause: err });
      }
    } else {
      yield* reader.rest();
    }
  } finally {
    await reader.close();
  }
}
