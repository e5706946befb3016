/**
 * zstd compression through @mongodb-js/zstd. Its index wrapper drops the
 * level argument (it always compresses at the library default), so the
 * native binding, which takes the level, is loaded directly.
 * Compression runs on the libuv thread pool, so several frames compress in
 * parallel while the main thread reads and hashes.
 */
import { createRequire } from 'node:module';

interface ZstdBinding {
  compress(data: Buffer, level?: number | null): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

const require = createRequire(import.meta.url);
const binding = require('@mongodb-js/zstd/bindings.js') as ZstdBinding;

/** Compresses `data` into one zstd frame at `level` (1-19). */
export function zstdCompress(data: Buffer, level: number): Promise<Buffer> {
  return binding.compress(data, level);
}

/** Decompresses one or more concatenated zstd frames held in memory (bounded by the caller). */
export function zstdDecompress(data: Buffer): Promise<Buffer> {
  return binding.decompress(data);
}
