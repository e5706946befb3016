import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from '../helpers/cli.js';
import { blobPath, buildImage } from './image-helpers.js';

// oras pull names each file after the layer's title: README must say which
// names a user gets, and they must be the names build writes.

test('README names the files oras pull writes, as build titles the payload layers', async (t) => {
  const readme = (await readFile(join(repoRoot, 'README.md'), 'utf8')).replace(/\s+/g, ' ');
  const oras = readme.slice(readme.indexOf('Payload layers carry `org.opencontainers.image.title`'));
  assert.match(oras.slice(0, 400), /`oras pull` writes them to files: a zstd payload as `NAME\.zst`.*an uncompressed one as `NAME`/);
  for (const compression of ['zstd', 'none'] as const) {
    const root = await tempDir(t);
    const img = await buildImage(root, { size: 1000, compression });
    const manifest = JSON.parse(await readFile(blobPath(img.dir, img.digest), 'utf8'));
    const titles = manifest.layers.map((l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title']);
    assert.deepEqual(titles, compression === 'zstd' ? ['system.zst', 'kernel.efi.zst'] : ['system', 'kernel.efi'], compression);
  }
});
