/**
 * OS images whose payloads share one blob (identical partitions): a copy
 * must check the blob against every payload's chunk hashes, not only the
 * last payload that names it.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { buildOsImageToLocal } from '../../src/osimage/build-local.js';
import { transfer } from '../../src/tasks/transfer.js';
import { blobPath, editConfig } from '../cli/image-helpers.js';
import { entriesLeft, pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

/** An image with payloads "a" and "b" built from the same bytes, so one layer blob serves both. */
async function sharedBlobImage(t: TestContext, compression: 'zstd' | 'none'): Promise<{ dir: string; src: string; digest: string }> {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'part.img'), pseudoRandom(300 * 1024 + 17, 4, true));
  const src = join(dir, 'src');
  const r = await buildOsImageToLocal(`oci:${src}:v1`, {
    payloads: [
      { name: 'a', path: join(dir, 'part.img') },
      { name: 'b', path: join(dir, 'part.img') },
    ],
    encoding: { compression, hashChunkSize: 64 * 1024 },
  });
  const manifest = JSON.parse(await readFile(blobPath(src, r.descriptor.digest), 'utf8'));
  assert.equal(manifest.layers.length, 2);
  assert.equal(manifest.layers[0].digest, manifest.layers[1].digest, 'both payloads use one blob');
  return { dir, src, digest: r.descriptor.digest };
}

describe('copy of an OS image whose payloads share a blob', () => {
  for (const [index, name] of [
    [0, 'a'],
    [1, 'b'],
  ] as const) {
    it(`fails with exit code 5 naming payload "${name}" when only its chunk hashes do not match`, async (t) => {
      const { dir, src, digest } = await sharedBlobImage(t, 'zstd');
      await editConfig(src, digest, (config) => {
        config.payloads[index].chunk_hashes_sha256[0] = 'A'.repeat(43);
      });
      const dst = join(dir, 'dst');
      const r = await runCli(['copy', `oci:${src}:v1`, `oci:${dst}:v1`, '--verify-chunks']);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, new RegExp(`payload "${name}": chunk 0 at byte offset 0 does not match its hash`));
      assert.ok(!(await entriesLeft(dst)).includes('index.json'), 'nothing tagged at the destination');
    });
  }

  it('checks every payload of the shared blob while it streams, reading the blob once', async (t) => {
    for (const compression of ['zstd', 'none'] as const) {
      const { dir, src } = await sharedBlobImage(t, compression);
      const r = await transfer(`oci:${src}:v1`, `oci:${join(dir, 'dst')}:v1`, { verifyOsImages: true });
      const v = r.verification!;
      assert.deepEqual(
        v.payloads.map((p) => p.name),
        ['a', 'b'],
        compression,
      );
      assert.ok(v.payloads.every((p) => p.chunks === 5 && p.compression === compression));
      assert.equal(v.blobs, 1, 'one blob checked');
      assert.equal(v.bytes, v.payloads[0]!.blobSize, 'its bytes counted once');
    }
  });
});
