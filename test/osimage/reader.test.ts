import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeSeekTable } from '../../src/codec/seek-table.js';
import { zstdCompress } from '../../src/codec/zstd.js';
import { decodeZstdStream } from '../../src/codec/zstd-stream.js';
import { openLocationForReading } from '../../src/copy/locations.js';
import type { OciError } from '../../src/errors.js';
import { canonicalJson } from '../../src/oci/json.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { buildOsImageToLocal } from '../../src/osimage/build-local.js';
import { OS_IMAGE_ARTIFACT_TYPE, OS_IMAGE_CONFIG_MEDIA_TYPE, type OsImageConfig, serializeConfig } from '../../src/osimage/format.js';
import { ChunkHashMismatchError, ChunkVerifier, readPayload, verifyPayload } from '../../src/osimage/payload-reader.js';
import { type OsImagePayload, parseOsImageConfig, parseOsImageManifest, readOsImage } from '../../src/osimage/reader.js';
import { type Blob, sha, writeLayout } from '../copy/fixtures.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { chunkHashesOf } from '../helpers/osimage-check.js';
import { requireTools } from '../helpers/tools.js';

const KiB = 1024;

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

async function* pieces(b: Buffer, size = 16 * KiB): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

/** An OS image whose payload blob is given as is (e.g. one big frame, as other builders write it). */
async function imageWithBlob(dir: string, data: Buffer, blobBytes: Buffer, mediaType: string, chunk = 64 * KiB): Promise<string> {
  const config: OsImageConfig = {
    format_version: '1',
    product_info: { id: 't', name: 'T', version: '1', variant: 'x86_64', commit_hash: '', commit_date: '', build_tree_dirty: false },
    payloads: [{ name: 'system', size: data.length, hash_chunk_size: chunk, chunk_hashes_sha256: chunkHashesOf(data, chunk) }],
  };
  const cfg = serializeConfig(config);
  const cfgBlob: Blob = { desc: { mediaType: OS_IMAGE_CONFIG_MEDIA_TYPE, digest: sha(cfg), size: cfg.length }, bytes: cfg };
  const payload: Blob = { desc: { mediaType, digest: sha(blobBytes), size: blobBytes.length }, bytes: blobBytes };
  const m = canonicalJson({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: OS_IMAGE_ARTIFACT_TYPE,
    config: cfgBlob.desc,
    layers: [payload.desc],
  });
  await writeLayout(dir, { desc: { mediaType: MediaType.ociManifest, digest: sha(m), size: m.length }, bytes: m }, [cfgBlob, payload], 'v1');
  return `oci:${dir}:v1`;
}

describe('OS image reader', () => {
  it('reads a multi-frame zstd payload back exactly, one frame at a time, reading ahead no more than the frames in flight', async (t) => {
    const dir = await tempDir(t);
    const data = pseudoRandom(1536 * KiB + 321, 5, true);
    await writeFile(join(dir, 'sys.img'), data);
    await buildOsImageToLocal(`oci:${join(dir, 'img')}:v1`, {
      payloads: [{ name: 'system', path: join(dir, 'sys.img') }],
      encoding: { hashChunkSize: 64 * KiB, frameSize: 256 * KiB },
    });
    const loc = await openLocationForReading(`oci:${join(dir, 'img')}:v1`);
    const image = await readOsImage(loc.store, loc.root);
    assert.equal(image.payloads[0]!.chunkHashes.length, 25);
    assert.ok((await collect(readPayload(loc.store, image, 'system'))).equals(data));

    // Bounded: each decoded piece is one frame, and the source is read at most `framesInFlight` frames ahead.
    const blob = await readFile(join(dir, 'img', 'blobs', 'sha256', image.payloads[0]!.layer.digest.slice(7)));
    let pulled = 0;
    const outputs: Array<{ size: number; pulledBefore: number }> = [];
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const p of pieces(blob, 8 * KiB)) {
        pulled += p.length;
        yield p;
      }
    }
    for await (const out of decodeZstdStream(counted(), { framesInFlight: 1 })) outputs.push({ size: out.length, pulledBefore: pulled });
    assert.equal(outputs.length, 7, '6 full frames and one short one');
    assert.ok(outputs.every((o) => o.size <= 256 * KiB));
    const frameCompressed = blob.length / 6; // roughly; random halves compress little
    assert.ok(outputs[0]!.pulledBefore < frameCompressed + 64 * KiB, `read ${outputs[0]!.pulledBefore} bytes before the first frame came out`);
    pulled = 0;
    const two: number[] = [];
    for await (const _ of decodeZstdStream(counted())) two.push(pulled);
    assert.ok(two[0]! > frameCompressed && two[0]! < 2 * frameCompressed + 64 * KiB, `default: two frames in flight, read ${two[0]} bytes first`);
    await loc.close();
  });

  it('reads a payload stored as one zstd frame with checksum (as other builders write it), and an uncompressed one', async (t) => {
    if (!requireTools(t, 'zstd')) return;
    const dir = await tempDir(t);
    const data = pseudoRandom(700 * KiB + 5, 9, true);
    const z = spawnSync('zstd', ['-q', '-c', '--check', '-3'], { input: data, maxBuffer: 1 << 26 });
    assert.equal(z.status, 0);
    const one = await openLocationForReading(await imageWithBlob(join(dir, 'one'), data, z.stdout, MediaType.zstd));
    const img = await readOsImage(one.store, one.root);
    assert.ok((await collect(readPayload(one.store, img, 'system'))).equals(data));
    const raw = await openLocationForReading(await imageWithBlob(join(dir, 'raw'), data, data, MediaType.octetStream));
    const rawImg = await readOsImage(raw.store, raw.root);
    assert.deepEqual(await verifyPayload(raw.store, rawImg, 'system'), {
      name: 'system',
      size: data.length,
      chunks: 11,
      blobSize: data.length,
      compression: 'none',
    });
  });

  it('holds manifest bytes its caller hands it to the descriptor, and reads no manifest then', async (t) => {
    const dir = await tempDir(t);
    const data = pseudoRandom(100 * KiB, 4, true);
    const loc = await openLocationForReading(await imageWithBlob(join(dir, 'img'), data, data, MediaType.octetStream));
    const bytes = await readFile(join(dir, 'img', 'blobs', 'sha256', loc.root.digest.slice('sha256:'.length)));
    const img = await readOsImage(loc.store, loc.root, bytes);
    assert.equal(img.manifestBytes, bytes);
    assert.equal(img.payloads[0]!.name, 'system');
    const other = Buffer.from(bytes);
    other[other.length >> 1]! ^= 1;
    await assert.rejects(readOsImage(loc.store, loc.root, other), (e: OciError) => e.code === 'DIGEST_MISMATCH');
    await assert.rejects(readOsImage(loc.store, loc.root, bytes.subarray(1)), (e: OciError) => e.code === 'SIZE_MISMATCH');
  });

  it('reads empty payloads, compressed and not', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'empty'), Buffer.alloc(0));
    for (const compression of ['zstd', 'none'] as const) {
      await buildOsImageToLocal(`oci:${join(dir, compression)}:v1`, { payloads: [{ name: 'empty', path: join(dir, 'empty') }], encoding: { compression } });
      const loc = await openLocationForReading(`oci:${join(dir, compression)}:v1`);
      const image = await readOsImage(loc.store, loc.root);
      assert.deepEqual(image.payloads[0]!.chunkHashes, []);
      assert.equal((await collect(readPayload(loc.store, image, 'empty'))).length, 0);
      assert.equal((await verifyPayload(loc.store, image, 'empty')).chunks, 0);
    }
  });

  it('hands a frame too large to hold to a streaming decoder', async (t) => {
    if (!requireTools(t, 'zstd')) return;
    const data = pseudoRandom(900 * KiB, 3, true);
    const frame = await zstdCompress(data, 3);
    const out = await collect(decodeZstdStream(pieces(frame), { maxFrameBytes: 32 * KiB }));
    assert.ok(out.equals(data));
  });

  it('releases data only after its chunk hash matched, and names payload, chunk and offset', async (t) => {
    const dir = await tempDir(t);
    const data = pseudoRandom(5 * 64 * KiB, 11);
    const stored = Buffer.from(data);
    stored[2 * 64 * KiB + 10]! ^= 0x40; // in chunk 2
    const loc = await openLocationForReading(await imageWithBlob(dir, data, data, MediaType.octetStream));
    const image = await readOsImage(loc.store, loc.root);
    await writeFile(join(dir, 'blobs', 'sha256', image.payloads[0]!.layer.digest.slice(7)), stored);
    const got: Buffer[] = [];
    await assert.rejects(
      async () => {
        for await (const c of readPayload(loc.store, image, 'system')) got.push(c);
      },
      (e: unknown) => {
        assert.ok(e instanceof ChunkHashMismatchError);
        assert.equal(e.code, 'CHUNK_HASH_MISMATCH');
        assert.equal(e.exitCode, 5);
        assert.equal(e.payload, 'system');
        assert.equal(e.chunkIndex, 2);
        assert.equal(e.offset, 2 * 64 * KiB);
        assert.match(e.message, /payload "system": chunk 2 at byte offset 131072/);
        return true;
      },
    );
    assert.equal(Buffer.concat(got).length, 2 * 64 * KiB, 'exactly the two good chunks came out');
    assert.ok(Buffer.concat(got).equals(data.subarray(0, 2 * 64 * KiB)));
  });

  it('fails short and long streams', () => {
    const data = pseudoRandom(150 * KiB, 2);
    const p: OsImagePayload = {
      index: 0,
      name: 'k',
      size: data.length,
      hashChunkSize: 64 * KiB,
      chunkHashes: chunkHashesOf(data, 64 * KiB),
      layer: { mediaType: MediaType.octetStream, digest: sha(data), size: data.length },
      compression: 'none',
    };
    const short = new ChunkVerifier(p);
    assert.equal([...short.push(data.subarray(0, 100 * KiB))].length, 1);
    assert.throws(
      () => short.end(),
      (e: OciError) => e.code === 'SIZE_MISMATCH' && /ended at byte 102400 of 153600 \(in chunk 1 at byte offset 65536\)/.test(e.message),
    );
    const long = new ChunkVerifier(p);
    assert.equal([...long.push(data)].length, 3);
    assert.throws(
      () => [...long.push(Buffer.from('x'))],
      (e: OciError) => e.code === 'SIZE_MISMATCH',
    );
    long.end();
  });

  it('refuses corrupt, truncated and mis-described zstd streams', async () => {
    const a = pseudoRandom(100 * KiB, 1, true);
    const b = pseudoRandom(80 * KiB, 2, true);
    const fa = await zstdCompress(a, 3);
    const fb = await zstdCompress(b, 3);
    const good = Buffer.concat([
      fa,
      fb,
      encodeSeekTable([
        { compressedSize: fa.length, decompressedSize: a.length },
        { compressedSize: fb.length, decompressedSize: b.length },
      ]),
    ]);
    assert.ok((await collect(decodeZstdStream(pieces(good, 1000)))).equals(Buffer.concat([a, b])));

    const lying = Buffer.concat([
      fa,
      fb,
      encodeSeekTable([
        { compressedSize: fa.length, decompressedSize: a.length },
        { compressedSize: fb.length, decompressedSize: b.length + 1 },
      ]),
    ]);
    await assert.rejects(collect(decodeZstdStream(pieces(lying))), (e: OciError) => e.code === 'INVALID_FORMAT' && /seek table entry 1/.test(e.message));

    await assert.rejects(
      collect(decodeZstdStream(pieces(Buffer.concat([fa, fb.subarray(0, fb.length - 20)])))),
      (e: OciError) => e.code === 'INVALID_FORMAT' && new RegExp(`truncated.*compressed offset ${fa.length}`).test(e.message),
    );

    const corrupt = Buffer.from(good);
    corrupt[fa.length + 4]! |= 0x08; // a reserved bit of frame 1's header
    await assert.rejects(
      collect(decodeZstdStream(pieces(corrupt))),
      (e: OciError) => e.code === 'INVALID_FORMAT' && new RegExp(`frame at compressed offset ${fa.length} has a reserved header bit`).test(e.message),
    );

    await assert.rejects(
      collect(decodeZstdStream(pieces(Buffer.from('not zstd at all')))),
      (e: OciError) => e.code === 'INVALID_FORMAT' && /no zstd frame at compressed offset 0/.test(e.message),
    );

    // A blob of no bytes is an empty payload only where the caller says so; a seek table alone never is.
    await assert.rejects(
      collect(decodeZstdStream(pieces(Buffer.alloc(0)))),
      (e: OciError) => e.code === 'INVALID_FORMAT' && /zstd blob is empty/.test(e.message),
    );
    assert.equal((await collect(decodeZstdStream(pieces(Buffer.alloc(0)), { allowEmptyBlob: true }))).length, 0);
    await assert.rejects(
      collect(decodeZstdStream(pieces(encodeSeekTable([])), { allowEmptyBlob: true })),
      (e: OciError) => e.code === 'INVALID_FORMAT' && /holds no zstd frame/.test(e.message),
    );
  });

  it('checks manifest and config the way the format reader does', () => {
    const cfgDesc = { mediaType: OS_IMAGE_CONFIG_MEDIA_TYPE, digest: sha(Buffer.from('x')), size: 1 };
    const layer = { mediaType: MediaType.zstd, digest: sha(Buffer.from('y')), size: 10 };
    const manifest = (over: Record<string, unknown>) =>
      Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: OS_IMAGE_ARTIFACT_TYPE, config: cfgDesc, layers: [layer], ...over }),
      );
    const m = parseOsImageManifest(manifest({}));
    assert.throws(() => parseOsImageManifest(manifest({ mediaType: MediaType.dockerManifest })), /media type/);
    assert.throws(() => parseOsImageManifest(manifest({ artifactType: 'application/x' })), /artifactType/);
    assert.throws(() => parseOsImageManifest(manifest({ config: { ...cfgDesc, mediaType: MediaType.ociConfig } })), /config media type/);
    assert.throws(
      () => parseOsImageManifest(manifest({ config: { ...cfgDesc, size: (50 << 20) + 1 } })),
      (e: OciError) => e.code === 'SIZE_EXCEEDS_LIMIT',
    );

    const payload = {
      name: 'system',
      size: 3 * 1024 * 1024 + 1,
      hash_chunk_size: 1 << 20,
      chunk_hashes_sha256: ['A'.repeat(43), 'B'.repeat(43), 'C'.repeat(43), 'D'.repeat(43)],
    };
    const cfg = (over: Record<string, unknown> = {}, p: Record<string, unknown> = {}) =>
      Buffer.from(JSON.stringify({ format_version: '1', product_info: {}, payloads: [{ ...payload, ...p }], ...over }));
    assert.equal(parseOsImageConfig(cfg(), m).payloads[0]!.compression, 'zstd');
    assert.throws(
      () => parseOsImageConfig(cfg({ format_version: '2' }), m),
      (e: OciError) => e.code === 'INVALID_FORMAT',
    );
    assert.throws(() => parseOsImageConfig(cfg({ payloads: [] }), m), /0 payloads but the manifest has 1 layers/);
    assert.throws(() => parseOsImageConfig(cfg({}, { size: -1 }), m), /size -1/);
    assert.throws(() => parseOsImageConfig(cfg({}, { hash_chunk_size: 0 }), m), /hash_chunk_size 0/);
    assert.throws(() => parseOsImageConfig(cfg({}, { hash_chunk_size: (16 << 20) + 1 }), m), /hash_chunk_size/);
    parseOsImageConfig(cfg({}, { hash_chunk_size: 16 << 20, chunk_hashes_sha256: ['A'.repeat(43)] }), m);
    assert.throws(() => parseOsImageConfig(cfg({}, { chunk_hashes_sha256: ['A'.repeat(43)] }), m), /1 chunk hashes, expected 4/);
    assert.throws(
      () => parseOsImageConfig(cfg({}, { chunk_hashes_sha256: ['A'.repeat(43), 'B'.repeat(43), 'C'.repeat(43), 'D'.repeat(42) + '='] }), m),
      /chunk hash 3/,
    );
    parseOsImageConfig(cfg({}, { size: 0, chunk_hashes_sha256: null }), m);
    const other = parseOsImageManifest(manifest({ layers: [{ ...layer, mediaType: MediaType.ociLayerGzip }] }));
    assert.throws(
      () => parseOsImageConfig(cfg(), other),
      (e: OciError) => e.code === 'INVALID_FORMAT',
    );
  });
});
