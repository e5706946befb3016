/**
 * Reading layers and tar inputs whatever their compression, recognized by
 * magic bytes (media types are sometimes wrong): gzip through zlib, zstd
 * through the frame-by-frame decoder the OS image reader uses (memory is
 * bounded by the largest frame, which for layers oci-os writes is 8 MiB of
 * tar), or plain tar.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { decodeZstdStream } from '../codec/zstd-stream.js';
import { OciError } from '../errors.js';
import { ByteReader } from './byte-reader.js';

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
