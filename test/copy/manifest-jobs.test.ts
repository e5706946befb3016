/**
 * `jobs` bounds manifest requests too, not only blobs: copying a large
 * index must not read (or write) every child manifest at once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ByteSource, PushOptions } from '../../src/content/store.js';
import { copyGraph } from '../../src/copy/graph.js';
import { openLocationForReading, openLocationForWriting } from '../../src/copy/locations.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { isGraphManifestMediaType } from '../../src/oci/mediatypes.js';
import { verifyGraph } from '../../src/tasks/verify.js';
import { tempDir } from '../helpers/cli.js';
import { artifactManifestOf, type Blob, blobOf as blob, containerImage, Gauge, indexOf as index, json, ManifestReadCounter, writeLayout } from './fixtures.js';

/**
 * Also counts manifest writes in flight (each held a little, like reads),
 * and what had been written by the time each tag was set.
 */
class CountingStore extends ManifestReadCounter {
  readonly writes = new Gauge();
  /** Manifests written so far. */
  written = 0;
  /** Each tag set, with what was written (and still being written) by then. */
  readonly tags: Array<{ tag: string; written: number; writing: number }> = [];

  override async push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void> {
    if (!isGraphManifestMediaType(desc.mediaType)) return this.inner.push(desc, content, options);
    this.writes.enter();
    try {
      await sleep(5);
      await this.inner.push(desc, content, options);
      this.written++;
    } finally {
      this.writes.leave();
    }
  }

  override tag(desc: Descriptor, tag: string): Promise<void> {
    this.tags.push({ tag, written: this.written, writing: this.writes.now });
    return this.inner.tag(desc, tag);
  }
}

describe('copy: jobs bounds manifest requests', () => {
  it('reads and writes at most `jobs` manifests of a large (nested) index at once, children before parents, tag last', async (t) => {
    const dir = await tempDir(t);
    // 12 platform images, and a nested index of 4 more with an artifact manifest.
    const images = await Promise.all(Array.from({ length: 16 }, (_, i) => containerImage(`arch${i}`, { layers: 0 })));
    const sbom = blob('application/vnd.example.sbom+json', json({ sbom: true }));
    const artifact = artifactManifestOf('application/vnd.example.sbom', [sbom.desc]);
    const nested = index([...images.slice(12).map((img) => img.manifest.desc), artifact.desc]);
    const root = index([...images.slice(0, 12).map((img) => img.manifest.desc), nested.desc]);
    const others = [...images.flatMap((img) => [...img.blobs, img.manifest]), sbom, artifact, nested];
    await writeLayout(join(dir, 'src'), root, others, 'v1');

    const s = await openLocationForReading(`oci:${join(dir, 'src')}:v1`);
    const d = await openLocationForWriting(`oci:${join(dir, 'dst')}:v1`);
    const src = new CountingStore(s.store);
    const dst = new CountingStore(d.store);
    let r: Awaited<ReturnType<typeof copyGraph>>;
    try {
      r = await copyGraph(src, dst, s.root, { jobs: 2, tags: ['v1'] });
      await d.commit();
    } catch (err) {
      await d.abort();
      throw err;
    } finally {
      await s.close();
      await d.close();
    }

    assert.equal(src.reads.peak, 2, 'manifest reads from the source in flight at most (and, here, exactly) jobs');
    assert.ok(dst.writes.peak <= 2, `manifest writes in flight: ${dst.writes.peak}`);
    // The tag is set last, once every manifest is stored.
    assert.deepEqual(dst.tags, [{ tag: 'v1', written: 16 + 1 + 2, writing: 0 }]);
    assert.deepEqual(r.tags, ['v1']);

    // Every manifest and blob copied once, each parent after all of its children.
    const order = r.contents.map((c) => c.digest);
    assert.equal(new Set(order).size, order.length);
    assert.equal(order.length, 16 * 2 + 2 + 2);
    assert.equal(order.at(-1), root.desc.digest);
    const after = (parent: Blob, children: Descriptor[]): void => {
      for (const c of children) assert.ok(order.indexOf(c.digest) < order.indexOf(parent.desc.digest), `${c.digest} before ${parent.desc.digest}`);
    };
    for (const img of images)
      after(
        img.manifest,
        img.blobs.map((b) => b.desc),
      );
    after(artifact, [sbom.desc]);
    after(nested, [...images.slice(12).map((img) => img.manifest.desc), artifact.desc]);
    after(root, [...images.slice(0, 12).map((img) => img.manifest.desc), nested.desc]);

    const v = await openLocationForReading(`oci:${join(dir, 'dst')}:v1`);
    try {
      const checked = await verifyGraph(v.store, v.root);
      assert.equal(checked.manifests, 16 + 1 + 2);
      assert.equal(checked.blobs, 16 + 1);
    } finally {
      await v.close();
    }
  });
});
