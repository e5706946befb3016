import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { layerEntries, scanTree } from '../../src/image/layering/tree-scan.js';
import { tarFrames } from '../../src/image/tar/frames.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test("content digests taken as a layer's tar is written, in frames of any size, equal those of reading the files", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  const sizes = [0, 1, 511, 512, 513, 70_000, 1 << 20, 3];
  for (const [n, size] of sizes.entries()) {
    await mkdir(join(root, `d${n % 3}`, 'x'.repeat(n * 30)), { recursive: true });
    await writeFile(join(root, `d${n % 3}`, 'x'.repeat(n * 30), `f${n}`), pseudoRandom(size, n + 1));
  }
  const read = await scanTree(root, {}, [], undefined, true);
  assert.ok(
    read.digests.some((b) => b !== 0),
    'reading the files gave digests',
  );
  // A layer of every other entry and every file, written in frames cut at odd places.
  const entries = Uint32Array.from(read.parent.keys()).filter((i) => i % 2 === 0 || read.type(i) === 'file');
  for (const frame of [1, 7, 512, 4099, 1 << 20]) {
    const streamed = await scanTree(root, {}, []);
    assert.ok(
      streamed.digests.every((b) => b === 0),
      'not hashed while scanning',
    );
    for await (const _ of tarFrames(layerEntries(streamed, entries, true), frame));
    assert.ok(read.digests.equals(streamed.digests), `frames of ${frame} bytes`);
  }
  // A writing that stops part-way through a file leaves that file without a digest.
  const partial = await scanTree(root, {}, []);
  let inBig = -1;
  const watched = async function* () {
    for await (const e of layerEntries(partial, entries, true)) {
      if (e.entry.size === 1 << 20) inBig = entries.find((i) => partial.entry(i).name === e.entry.name)!;
      yield e;
    }
  };
  for await (const _ of tarFrames(watched(), 4096)) if (inBig >= 0) break;
  assert.ok(inBig >= 0, 'the writing reached the big file');
  assert.ok(
    partial.digests.subarray(32 * inBig, 32 * inBig + 32).every((b) => b === 0),
    'the big file has no digest',
  );
  assert.ok(
    Array.from(read.parent.keys()).some((i) => read.path(i).length > 100),
    'a long name (extended header) is among them',
  );
});
