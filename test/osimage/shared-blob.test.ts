/**
 * Identical partitions share one blob: verify reads it (and counts its
 * bytes) once, the decoded bytes are hashed once for all payloads with the
 * same chunk hashes, and layers of one digest naming both compressions are
 * checked from one pass over the blob.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { mock, type TestContext, test } from 'node:test';
import { zstdCompress } from '../../src/codec/zstd.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { ChunkCheckingStore } from '../../src/osimage/chunk-checking-store.js';
import { ChunkHashMismatchError, ChunkVerifier, checkPayloadsFrom, payloadsByBlob } from '../../src/osimage/payload-reader.js';
import { type OsImagePayload, readOsImage } from '../../src/osimage/reader.js';
import { verifyGraph } from '../../src/tasks/verify.js';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';
import { chunkHashesOf } from '../helpers/osimage-check.js';

const KiB = 1024;

/** Counts a store's fetch() calls, by digest. */
function countFetches<S extends { fetch(desc: Descriptor): Promise<Readable> }>(store: S): Map<string, number> {
  const reads = new Map<string, number>();
  const fetch = store.fetch.bind(store);
  store.fetch = (desc: Descriptor): Promise<Readable> => {
    reads.set(desc.digest, (reads.get(desc.digest) ?? 0) + 1);
    return fetch(desc);
  };
  return reads;
}

/** An OS image whose payloads `a` and `b` are the same file (one blob), plus `kernel.efi`. */
async function twinImage(t: TestContext, compression: 'zstd' | 'none'): Promise<{ dir: string; size: number }> {
  const root = await tempDir(t);
  const size = 300 * KiB + 77;
  await writeFile(join(root, 'part.img'), pseudoRandom(size, 7, true));
  await writeFile(join(root, 'kernel.efi'), Buffer.from('MZ kernel\n'.repeat(50)));
  const dir = join(root, 'img');
  const r = await runCli([
    'build',
    '-p',
    `a=${join(root, 'part.img')}`,
    '-p',
    `kernel.efi=${join(root, 'kernel.efi')}`,
    '-p',
    `b=${join(root, 'part.img')}`,
    '--compression',
    compression,
    '--hash-chunk-size',
    '64KiB',
    '--product-id',
    'testos',
    '--product-version',
    '1.0',
    '--variant',
    'x86_64',
    '-o',
    `oci:${dir}:v1`,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return { dir, size };
}

for (const compression of ['zstd', 'none'] as const) {
  test(`verify reads a blob shared by identical payloads once and counts its bytes once (${compression})`, async (t) => {
    const { dir } = await twinImage(t, compression);
    const layout = await OciLayout.open(dir);
    const root = await layout.resolve('v1');
    const image = await readOsImage(layout, root);
    const [a, kernel, b] = image.payloads;
    assert.equal(a!.layer.digest, b!.layer.digest, 'the twins share one blob');

    const reads = countFetches(layout);
    const verified: string[] = [];
    const r = await verifyGraph(layout, root, { onVerified: (v) => v.payload && verified.push(v.payload) });
    assert.equal(reads.get(a!.layer.digest), 1, 'the shared blob is read once');
    assert.equal(reads.get(kernel!.layer.digest), 1);
    assert.equal(r.blobs, 3, 'config, shared blob, kernel blob');
    assert.equal(r.bytes, image.manifest.config.size + a!.layer.size + kernel!.layer.size);
    assert.deepEqual(
      r.payloads.map((p) => [p.name, p.size, p.chunks, p.manifest]),
      image.payloads.map((p) => [p.name, p.size, p.chunkHashes.length, root.digest]),
    );
    assert.deepEqual(verified.sort(), ['a', 'b', 'kernel.efi']);
  });
}

test('identical payloads of one blob are hashed once; a payload with other hashes is still checked and named', async (t) => {
  const { dir, size } = await twinImage(t, 'zstd');
  const layout = await OciLayout.open(dir);
  const image = await readOsImage(layout, await layout.resolve('v1'));
  const twins = payloadsByBlob(image.payloads).get(image.payloads[0]!.layer.digest)!;
  assert.deepEqual(
    twins.map((p) => p.name),
    ['a', 'b'],
  );

  let hashed = 0;
  const push = ChunkVerifier.prototype.push;
  mock.method(ChunkVerifier.prototype, 'push', function* (this: ChunkVerifier, data: Buffer) {
    hashed += data.length;
    yield* push.call(this, data);
  });
  t.after(() => mock.restoreAll());

  const results = await checkPayloadsFrom(await layout.fetch(twins[0]!.layer), twins);
  assert.deepEqual(
    results.map((r) => r.name),
    ['a', 'b'],
    'every payload reported',
  );
  assert.equal(hashed, size, 'the decoded bytes are hashed once for both');

  // Same size and chunk size, one hash differs: no longer identical, so checked on its own and named.
  const wrong = { ...twins[1]!, chunkHashes: twins[1]!.chunkHashes.map((h, i) => (i === 2 ? twins[1]!.chunkHashes[1]! : h)) };
  await assert.rejects(checkPayloadsFrom(await layout.fetch(twins[0]!.layer), [twins[0]!, wrong]), (err: unknown) => {
    assert.ok(err instanceof ChunkHashMismatchError);
    assert.equal(err.payload, 'b');
    assert.equal(err.chunkIndex, 2);
    return true;
  });
});

/** One blob that two layers name, once as zstd (of `data`) and once as raw bytes (of the blob itself). */
async function bothCompressions(): Promise<{ blob: Buffer; payloads: OsImagePayload[] }> {
  const data = pseudoRandom(200 * KiB + 5, 3, true);
  const blob = await zstdCompress(data, 3);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const chunk = 16 * KiB;
  const payloads: OsImagePayload[] = [
    {
      index: 0,
      name: 'packed',
      size: data.length,
      hashChunkSize: chunk,
      chunkHashes: chunkHashesOf(data, chunk),
      layer: { mediaType: MediaType.zstd, digest, size: blob.length },
      compression: 'zstd',
    },
    {
      index: 1,
      name: 'raw',
      size: blob.length,
      hashChunkSize: chunk,
      chunkHashes: chunkHashesOf(blob, chunk),
      layer: { mediaType: MediaType.octetStream, digest, size: blob.length },
      compression: 'none',
    },
  ];
  return { blob, payloads };
}

test('layers of one digest with different compressions are checked from one pass', async () => {
  const { blob, payloads } = await bothCompressions();
  let passes = 0;
  const source = async function* (): AsyncGenerator<Buffer> {
    passes++;
    for (let off = 0; off < blob.length; off += 5000) yield blob.subarray(off, off + 5000);
  };
  const results = await checkPayloadsFrom(source(), payloads);
  assert.equal(passes, 1);
  assert.deepEqual(
    results.map((r) => [r.name, r.compression]),
    [
      ['packed', 'zstd'],
      ['raw', 'none'],
    ],
  );

  // A mismatch in either decoding fails the check and names its payload.
  for (const bad of [0, 1]) {
    const broken = payloads.map((p, i) => (i === bad ? { ...p, chunkHashes: [...p.chunkHashes].reverse() } : p));
    await assert.rejects(checkPayloadsFrom(source(), broken), (err: unknown) => err instanceof ChunkHashMismatchError && err.payload === payloads[bad]!.name);
  }
  // A failing blob stream fails the check, naming the payloads.
  const failing = async function* (): AsyncGenerator<Buffer> {
    yield blob.subarray(0, 1000);
    throw new Error('disk gone');
  };
  await assert.rejects(checkPayloadsFrom(failing(), payloads), /payload "(packed|raw)".*disk gone/);
});

test('exists() checks a blob named with two compressions in one read', async (t) => {
  const { blob, payloads } = await bothCompressions();
  const layout = await OciLayout.open(join(await tempDir(t), 'dst'), { create: true });
  await layout.push(payloads[0]!.layer, Readable.from([blob]));
  const reads = countFetches(layout);
  const checking = new ChunkCheckingStore(layout, payloads);
  assert.equal(await checking.exists(payloads[1]!.layer), true);
  assert.equal(reads.get(payloads[0]!.layer.digest), 1, 'one read for both decodings');
  assert.ok(checking.complete);
  assert.deepEqual(
    checking.results().map((r) => r.name),
    ['packed', 'raw'],
  );
});
