/**
 * `jobs` bounds manifest reads in verifyGraph too, not only blob checks:
 * verifying a large index must not read every child manifest at once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openLocationForReading } from '../../src/copy/locations.js';
import { canonicalJson } from '../../src/oci/json.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OS_IMAGE_ARTIFACT_TYPE, OS_IMAGE_CONFIG_MEDIA_TYPE, serializeConfig } from '../../src/osimage/format.js';
import { inspect } from '../../src/tasks/inspect.js';
import { verifyGraph } from '../../src/tasks/verify.js';
import { artifactManifestOf, type Blob, blobOf as blob, containerImage, indexOf as index, json, ManifestReadCounter, writeLayout } from '../copy/fixtures.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { chunkHashesOf } from '../helpers/osimage-check.js';

const KiB = 1024;
/** An OS image with one uncompressed payload: its manifest, config and payload blob. */
function osImage(seed: number): { manifest: Blob; blobs: Blob[] } {
  const chunk = 16 * KiB;
  const data = pseudoRandom(3 * chunk + 100, seed, true);
  const chunkHashes = chunkHashesOf(data, chunk);
  const config = blob(
    OS_IMAGE_CONFIG_MEDIA_TYPE,
    serializeConfig({
      format_version: '1',
      product_info: { id: 't', name: 'T', version: `${seed}`, variant: 'x86_64', commit_hash: '', commit_date: '', build_tree_dirty: false },
      payloads: [{ name: 'system', size: data.length, hash_chunk_size: chunk, chunk_hashes_sha256: chunkHashes }],
    }),
  );
  const payload = blob(MediaType.octetStream, data);
  const manifest = blob(
    MediaType.ociManifest,
    canonicalJson({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: OS_IMAGE_ARTIFACT_TYPE,
      config: config.desc,
      layers: [payload.desc],
    }),
  );
  return { manifest, blobs: [config, payload] };
}

describe('verify: jobs bounds manifest reads', () => {
  it('reads at most `jobs` manifests of a large (nested) index at once, and never starves itself', { timeout: 60_000 }, async (t) => {
    const dir = await tempDir(t);
    // 12 platform images, and a nested index of 4 more, 2 OS images and an artifact manifest.
    const images = await Promise.all(Array.from({ length: 16 }, (_, i) => containerImage(`arch${i}`, { layers: 1, layerSize: 2000 })));
    const osImages = [osImage(1), osImage(2)];
    const sbom = blob('application/vnd.example.sbom+json', json({ sbom: true }));
    const artifact = artifactManifestOf('application/vnd.example.sbom', [sbom.desc]);
    const nested = index([...images.slice(12).map((img) => img.manifest.desc), ...osImages.map((img) => img.manifest.desc), artifact.desc]);
    const root = index([...images.slice(0, 12).map((img) => img.manifest.desc), nested.desc]);
    const others = [...[...images, ...osImages].flatMap((img) => [...img.blobs, img.manifest]), sbom, artifact, nested];
    await writeLayout(join(dir, 'src'), root, others, 'v1');

    // jobs 1 as well: a walk whose waits for children held a slot would never end.
    for (const jobs of [2, 1]) {
      const s = await openLocationForReading(`oci:${join(dir, 'src')}:v1`);
      const store = new ManifestReadCounter(s.store);
      let r: Awaited<ReturnType<typeof verifyGraph>>;
      try {
        r = await verifyGraph(store, s.root, { jobs });
      } finally {
        await s.close();
      }
      assert.equal(store.reads.peak, jobs, `manifest reads in flight at most (and, here, exactly) jobs=${jobs}`);
      assert.equal(store.reads.now, 0);

      // Everything was still checked, each manifest read once (an OS image's reader takes the walk's bytes).
      assert.equal(r.manifests, 16 + 2 + 1 + 2);
      assert.equal(r.blobs, 16 * 2 + 2 * 2 + 1);
      assert.deepEqual(
        r.payloads.map((p) => p.name),
        ['system', 'system'],
      );
      assert.equal(store.readCount.size, r.manifests);
      for (const [digest, n] of store.readCount) assert.equal(n, 1, digest);
      const os = osImages.map((img) => img.manifest.desc.digest);
      assert.deepEqual(
        os.map((d) => store.readCount.get(d)),
        [1, 1],
      );

      // inspect reads an OS image's manifest once too, and its config.
      const one = await openLocationForReading(`oci:${join(dir, 'src')}:v1`);
      try {
        const counted = new ManifestReadCounter(one.store);
        const seen = await inspect(counted, osImages[0]!.manifest.desc, 'os');
        assert.equal(seen.summary.kind, 'os-image');
        assert.deepEqual([...counted.readCount], [[os[0], 1]]);
      } finally {
        await one.close();
      }
    }
  });
});
