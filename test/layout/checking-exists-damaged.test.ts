/**
 * A payload blob at the destination that the store itself refuses (damaged,
 * missing) is answered as absent from the one read that found it, without
 * asking the store's exists() (which hashes the blob again).
 */
import assert from 'node:assert/strict';
import { cp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Readable } from 'node:stream';
import { tempDir } from '../helpers/cli.js';
import { blobPath, buildImage } from '../cli/image-helpers.js';
import { OciLayout } from '../../src/layout/layout.js';
import { ChunkCheckingStore } from '../../src/checking-store.js';
import { readOsImage, type OsImage } from '../../src/osimage/reader.js';
import type { Descriptor } from '../../src/oci/descriptor.js';

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

async function imageAndCopy(t: TestContext): Promise<{ src: OciLayout; image: OsImage; dstDir: string }> {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 400 * 1024 });
  const src = await OciLayout.open(img.dir);
  const image = await readOsImage(src, await src.resolve('v1'));
  const dstDir = join(root, 'dst');
  await cp(img.dir, dstDir, { recursive: true });
  return { src, image, dstDir };
}

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
