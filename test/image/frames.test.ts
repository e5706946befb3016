import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { layerEntries } from '../../src/image/layer.js';
import { tarFrames } from '../../src/image/tar/frames.js';
import type { TarEntry } from '../../src/image/tar/header.js';
import { readTar } from '../../src/image/tar/reader.js';
import { BufferPool } from '../../src/util/buffer-pool.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { tarOf } from './helpers.js';

const SIZES = [0, 1, 511, 512, 513, 4096, (1 << 20) - 1, (1 << 20) + 1, (3 << 20) + 77];

async function makeTree(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  await mkdir(join(root, 'd'), { recursive: true });
  for (const [i, size] of SIZES.entries()) {
    const body = pseudoRandom(size, i + 1, true);
    files.set(`d/f${i}`, body);
    await writeFile(join(root, 'd', `f${i}`), body);
  }
  await symlink('d/f1', join(root, 'link'));
  return files;
}

test('tar frames: the same bytes at every frame size, each frame full but the last, reused pool buffers never leak old bytes', async (t) => {
  const dir = await tempDir(t);
  const files = await makeTree(dir);
  const entries: Array<{ entry: TarEntry; body?: Buffer }> = [];
  for await (const e of layerEntries(dir, { normalize: { sourceDateEpoch: 0 } })) entries.push({ entry: e.entry, body: files.get(e.entry.name) });
  const expected = tarOf(entries);
  for (const frameSize of [100, 512, 513, 4096, 1 << 20, 8 << 20]) {
    const pool = new BufferPool(frameSize);
    const hash = createHash('sha256');
    let total = 0;
    let frames = 0;
    let short = 0;
    for await (const frame of tarFrames(layerEntries(dir, { normalize: { sourceDateEpoch: 0 } }), frameSize, pool.take)) {
      if (frame.length !== frameSize) short++;
      assert.ok(frame.length <= frameSize);
      assert.ok(expected.subarray(total, total + frame.length).equals(frame), `frame size ${frameSize}: frame ${frames} differs`);
      hash.update(frame);
      total += frame.length;
      frames++;
      frame.fill(0xa5); // a pool buffer given back dirty must be fully overwritten
      pool.give(frame);
    }
    assert.equal(total, expected.length, `frame size ${frameSize}`);
    assert.ok(short <= 1, `frame size ${frameSize}: ${short} short frames`);
    assert.equal(hash.digest('hex'), createHash('sha256').update(expected).digest('hex'));
  }
  // The reader agrees on names and contents.
  const seen: string[] = [];
  for await (const e of readTar(
    (async function* () {
      yield expected;
    })(),
    'frames.tar',
  )) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(Buffer.from(c));
    if (e.type === 'file') assert.ok(Buffer.concat(chunks).equals(files.get(e.name)!), e.name);
    seen.push(e.name);
  }
  assert.deepEqual(seen, ['d/', ...SIZES.map((_, i) => `d/f${i}`).sort(), 'link']);
});

test('tar frames: a file that grew or shrank since lstat fails the build', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'f'), pseudoRandom(5000, 1));
  const drain = async (frameSize: number, change: () => Promise<void>) => {
    const it = layerEntries(dir, { normalize: { sourceDateEpoch: 0 } });
    const changed = (async function* () {
      for await (const e of it) {
        await change();
        yield e;
      }
    })();
    for await (const _ of tarFrames(changed, frameSize)) {
      /* drain */
    }
  };
  await assert.rejects(
    drain(1 << 20, () => appendFile(join(dir, 'f'), 'x')),
    /f changed while it was read/,
  );
  await assert.rejects(
    drain(512, () => writeFile(join(dir, 'f'), pseudoRandom(4000, 1))),
    /f changed while it was read/,
  );
  await writeFile(join(dir, 'f'), pseudoRandom(5120, 1)); // ends exactly at a frame's end: the probe goes into the next frame
  await assert.rejects(
    drain(5632, () => appendFile(join(dir, 'f'), 'x')),
    /f changed while it was read/,
  );
});
