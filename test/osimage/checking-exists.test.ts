import assert from 'node:assert/strict';
import { cp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { ChunkCheckingStore } from '../../src/osimage/chunk-checking-store.js';
import { type OsImage, readOsImage } from '../../src/osimage/reader.js';
import { blobPath, buildImage } from '../cli/image-helpers.js';
import { tempDir } from '../helpers/cli.js';

/** A layout whose blob reads are counted, by digest. */
async function countingLayout(dir: string): Promise<{ layout: OciLayout; reads: Map<string, number> }> {
  const layout = await OciLayout.open(dir);
  const reads = new Map<string, number>();
  const fetch = layout.fetch.bind(layout);
  layout.fetch = (desc: Descriptor): Promise<Readable> => {
    reads.set(desc.digest, (reads.get(desc.digest) ?? 0) + 1);
    return fetch(desc);
  };
  return { layout, reads };
}

/** An OS image in a source layout, and a destination layout that already holds every blob (an earlier pull). */
async function imageAndCopy(t: TestContext): Promise<{ src: OciLayout; image: OsImage; dstDir: string }> {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 700 * 1024 });
  const src = await OciLayout.open(img.dir);
  const image = await readOsImage(src, await src.resolve('v1'));
  const dstDir = join(root, 'dst');
  await cp(img.dir, dstDir, { recursive: true });
  return { src, image, dstDir };
}

test('a payload blob already at the destination is checked, digest and chunks, in one read', async (t) => {
  const { image, dstDir } = await imageAndCopy(t);
  const { layout, reads } = await countingLayout(dstDir);
  const checking = new ChunkCheckingStore(layout, image.payloads);
  for (const p of image.payloads) assert.equal(await checking.exists(p.layer), true);
  assert.ok(checking.complete, 'every payload checked');
  assert.deepEqual(
    [...reads.values()],
    image.payloads.map(() => 1),
    'each blob read once',
  );
  assert.deepEqual(
    checking.results().map((r) => r.name),
    ['system', 'kernel.efi'],
  );
  // A second question costs nothing.
  assert.equal(await checking.exists(image.payloads[0]!.layer), true);
  assert.equal(reads.get(image.payloads[0]!.layer.digest), 1);
});

test('a damaged payload blob at the destination counts as absent, so it is downloaded again', async (t) => {
  const { src, image, dstDir } = await imageAndCopy(t);
  const system = image.payloads[0]!.layer;
  const fh = await open(join(dstDir, 'blobs', 'sha256', system.digest.slice(7)), 'r+');
  await fh.write(Buffer.from([0x55]), 0, 1, 1000);
  await fh.close();

  const checking = new ChunkCheckingStore(await OciLayout.open(dstDir), image.payloads);
  assert.equal(await checking.exists(system), false);
  assert.equal(checking.verified.has(system.digest), false);
  // Downloading it again goes through the chunk check and replaces the damaged copy.
  await checking.push(system, await src.fetch(system));
  assert.equal(await checking.exists(system), true);
  assert.ok(checking.verified.has(system.digest));
});

test('a payload blob whose digest fails (chunks sound) is absent after one read, and downloaded again', async (t) => {
  const { src, image, dstDir } = await imageAndCopy(t);
  const system = image.payloads[0]!.layer;
  // The last byte belongs to the seek table's magic: the frames still decode to the right chunks,
  // only the blob digest tells the damage.
  const fh = await open(blobPath(dstDir, system.digest), 'r+');
  const last = Buffer.alloc(1);
  await fh.read(last, 0, 1, system.size - 1);
  await fh.write(Buffer.from([last[0]! ^ 0xff]), 0, 1, system.size - 1);
  await fh.close();

  const { layout, reads } = await countingLayout(dstDir);
  const checking = new ChunkCheckingStore(layout, image.payloads);
  assert.equal(await checking.exists(system), false);
  assert.equal(reads.get(system.digest), 1, 'the damaged blob is read once');
  assert.equal(checking.verified.has(system.digest), false);
  await checking.push(system, await src.fetch(system));
  assert.ok(checking.verified.has(system.digest), 'checked on the way in');
  assert.equal(await checking.exists(system), true);
});

test('a missing payload blob is absent without a second look', async (t) => {
  const { image, dstDir } = await imageAndCopy(t);
  const system = image.payloads[0]!.layer;
  await rm(blobPath(dstDir, system.digest));
  const { layout, reads } = await countingLayout(dstDir);
  let asked = 0;
  const exists = layout.exists.bind(layout);
  layout.exists = (desc: Descriptor): Promise<boolean> => {
    asked++;
    return exists(desc);
  };
  const checking = new ChunkCheckingStore(layout, image.payloads);
  assert.equal(await checking.exists(system), false);
  assert.equal(reads.get(system.digest), 1);
  assert.equal(asked, 0, "the store's exists() is not asked again");
});
