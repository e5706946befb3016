import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readFileFrames, recutFrames } from '../../src/codec/frames.js';
import { decodeSeekTable, seekTableLength } from '../../src/codec/seek-table.js';
import { zstdDecompress } from '../../src/codec/zstd.js';
import { isOciError } from '../../src/errors.js';
import { encodePayload, resolveEncoding } from '../../src/osimage/payload.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

const CHUNK = 1 << 20;

function expectedHashes(data: Buffer, chunk: number): string[] {
  const out: string[] = [];
  for (let off = 0; off < data.length; off += chunk) {
    out.push(
      createHash('sha256')
        .update(data.subarray(off, off + chunk))
        .digest('base64')
        .replace(/=+$/, ''),
    );
  }
  return out;
}

async function encode(data: Buffer, enc: Parameters<typeof encodePayload>[1] = {}) {
  const e = resolveEncoding(enc);
  const { blob, result } = encodePayload(recutFrames([data], e.frameSize), enc);
  const parts: Buffer[] = [];
  for await (const b of blob) parts.push(Buffer.from(b));
  return { blob: Buffer.concat(parts), info: result() };
}

/** Splits a seekable blob into its frames using only the seek table and checks each decodes alone. */
async function checkSeekable(blob: Buffer, data: Buffer): Promise<number> {
  const tableLen = seekTableLength(blob.subarray(blob.length - 9));
  const frames = decodeSeekTable(blob.subarray(blob.length - tableLen));
  let coff = 0;
  let doff = 0;
  for (const f of frames) {
    const out = await zstdDecompress(blob.subarray(coff, coff + f.compressedSize));
    assert.equal(out.length, f.decompressedSize);
    assert.ok(out.equals(data.subarray(doff, doff + f.decompressedSize)), `frame at ${doff} decodes to the payload bytes`);
    coff += f.compressedSize;
    doff += f.decompressedSize;
  }
  assert.equal(coff, blob.length - tableLen, 'frames end where the seek table starts');
  assert.equal(doff, data.length);
  return frames.length;
}

for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 9 * CHUNK + 12345]) {
  test(`chunk hashes and zstd frames for a ${size}-byte payload`, async () => {
    const data = pseudoRandom(size, size + 7, true);
    const { blob, info } = await encode(data);
    assert.equal(info.size, size);
    assert.deepEqual(info.chunkHashes, expectedHashes(data, CHUNK));
    assert.equal(info.chunkHashes.length, Math.ceil(size / CHUNK));
    assert.equal(info.mediaType, 'application/zstd');
    const frames = await checkSeekable(blob, data);
    assert.equal(frames, Math.max(1, Math.ceil(size / (4 * CHUNK))));
    assert.equal(info.frames, frames);

    const raw = await encode(data, { compression: 'none' });
    assert.ok(raw.blob.equals(data), 'uncompressed blob is the payload itself');
    assert.deepEqual(raw.info.chunkHashes, info.chunkHashes);
    assert.equal(raw.info.mediaType, 'application/octet-stream');
  });
}

test('odd hash chunk and frame sizes keep frames on chunk boundaries', async () => {
  const data = pseudoRandom(1_000_003, 3);
  const { blob, info } = await encode(data, { hashChunkSize: 1000, frameSize: 7000 });
  assert.deepEqual(info.chunkHashes, expectedHashes(data, 1000));
  assert.equal(await checkSeekable(blob, data), Math.ceil(data.length / 7000));
});

test('output is deterministic and independent of parallelism', async () => {
  const data = pseudoRandom(10 * CHUNK + 99, 11, true);
  const a = await encode(data, { concurrency: 1 });
  const b = await encode(data, { concurrency: 4 });
  const c = await encode(data, { concurrency: 3 });
  assert.ok(a.blob.equals(b.blob));
  assert.ok(a.blob.equals(c.blob));
});

test('compression levels change the bytes, not the payload', async () => {
  const data = pseudoRandom(3 * CHUNK, 5, true);
  const l1 = await encode(data, { level: 1 });
  const l19 = await encode(data, { level: 19 });
  assert.ok(l19.blob.length <= l1.blob.length);
  await checkSeekable(l1.blob, data);
  await checkSeekable(l19.blob, data);
});

test('invalid encodings are refused with clear errors', () => {
  for (const bad of [
    { level: 0 },
    { level: 20 },
    { hashChunkSize: 0 },
    { hashChunkSize: (16 << 20) + 1 },
    { frameSize: CHUNK + 1 },
    { compression: 'gzip' as never },
  ]) {
    assert.throws(
      () => resolveEncoding(bad),
      (e) => isOciError(e, 'INVALID_ARGUMENT'),
      JSON.stringify(bad),
    );
  }
  assert.equal(resolveEncoding({ hashChunkSize: 16 << 20 }).frameSize, 16 << 20, 'default frame is at least one chunk');
  assert.equal(resolveEncoding({ hashChunkSize: 3 << 20 }).frameSize, 3 << 20, 'default frame rounds down to whole chunks');
});

test('the zstd CLI decodes a seekable blob to the original bytes', async (t) => {
  if (!requireTools(t, 'zstd')) return;
  const dir = await tempDir(t);
  const data = pseudoRandom(6 * CHUNK + 5, 9, true);
  const src = join(dir, 'payload');
  await writeFile(src, data);
  const { blob } = await (async () => {
    const { blob, result } = encodePayload(readFileFrames(src, 4 * CHUNK));
    const parts: Buffer[] = [];
    for await (const b of blob) parts.push(Buffer.from(b));
    return { blob: Buffer.concat(parts), info: result() };
  })();
  await writeFile(join(dir, 'blob.zst'), blob);
  const r = spawnSync('zstd', ['-d', '-c', join(dir, 'blob.zst')], { maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.ok(r.stdout.equals(data));
});
