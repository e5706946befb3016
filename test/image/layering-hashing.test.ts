import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentTap, scanTree } from '../../src/image/layering/tree-scan.js';
import { writeTar } from '../../src/image/tar/writer.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test("content digests taken from a layer's tar stream, in chunks cut anywhere, equal those of reading the files", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  const sizes = [0, 1, 511, 512, 513, 70_000, 1 << 20, 3];
  for (const [n, size] of sizes.entries()) {
    await mkdir(join(root, `d${n % 3}`, 'x'.repeat(n * 30)), { recursive: true });
    await writeFile(join(root, `d${n % 3}`, 'x'.repeat(n * 30), `f${n}`), pseudoRandom(size, n + 1));
  }
  const read = await scanTree(root, {}, [], undefined, true);
  // A layer of every other entry, written as the layers write theirs, fed to the tap in odd chunks.
  const entries = Uint32Array.from(read.parent.keys()).filter((i) => i % 2 === 0 || read.type(i) === 'file');
  for (const cut of [1, 7, 512, 4099, 1 << 20]) {
    const streamed = await scanTree(root, {}, []);
    const tap = contentTap(streamed, entries)();
    const chunks: Buffer[] = [];
    for await (const c of writeTar(
      (async function* () {
        for (const i of entries) yield { entry: streamed.entry(i), source: streamed.source(i) };
      })(),
    ))
      chunks.push(c);
    const tar = Buffer.concat(chunks);
    for (let off = 0; off < tar.length; off += cut) tap(tar.subarray(off, off + cut));
    assert.ok(read.digests.equals(streamed.digests), `chunks of ${cut} bytes`);
  }
  assert.ok(
    Array.from(read.parent.keys()).some((i) => read.path(i).length > 100),
    'a long name (extended header) is among them',
  );
});
