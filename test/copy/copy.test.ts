import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { childrenOf, copyGraph, readManifestBytes } from '../../src/copy/graph.js';
import { openLocationForReading, openLocationForWriting, parseLocation } from '../../src/copy/locations.js';
import type { OciError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { RegistryClient } from '../../src/registry/client.js';
import { entriesLeft, tempDir } from '../helpers/cli.js';
import { tempRegistry } from '../server/helpers.js';
import { type Blob, containerImage, copyLocations, multiArchIndex, sha, writeLayout } from './fixtures.js';

type Reg = Awaited<ReturnType<typeof tempRegistry>>;

const copy = copyLocations;

describe('copyGraph', () => {
  let reg: Reg;
  let client: RegistryClient;
  before(async () => {
    reg = await tempRegistry();
    client = new RegistryClient({ retry: { retries: 0 } });
  });
  after(async () => {
    await client.close();
    await reg.stop();
  });

  it('copies a multi-arch index completely, children before parents, and skips what is there', async (t) => {
    const dir = await tempDir(t);
    const { index, manifests, blobs } = await multiArchIndex(['amd64', 'arm64', 'riscv64'], { layerSize: 50_000 });
    await writeLayout(join(dir, 'src'), index, [...blobs, ...manifests], 'multi');

    const order: string[] = [];
    const s = await openLocationForReading(`oci:${join(dir, 'src')}:multi`);
    const d = await openLocationForWriting(`${reg.address}/multi/arch:v1`, { client });
    const r = await copyGraph(s.store, d.store, s.root, {
      tags: ['v1'],
      progress: (e) => {
        if (e.type === 'blob-done' || e.type === 'manifest') order.push(e.digest);
      },
    });
    await s.close();
    assert.equal(r.root.digest, index.desc.digest);
    assert.deepEqual(r.tags, ['v1']);
    // 3 configs + 6 layers + 3 manifests + 1 index, each once.
    assert.equal(r.contents.length, 13);
    assert.equal(new Set(r.contents.map((c) => c.digest)).size, 13);
    assert.equal(order.at(-1), index.desc.digest, 'the index is stored last');
    for (const m of manifests) {
      const mi = order.indexOf(m.desc.digest);
      const children = childrenOf(m.desc, m.bytes).blobs;
      for (const c of children) assert.ok(order.indexOf(c.digest) < mi, 'blobs before their manifest');
    }
    assert.ok(r.contents.filter((c) => c.kind === 'blob').every((c) => c.status === 'uploaded' && c.uploadedBytes === c.size));

    // Back into a fresh layout: every blob there, bytes identical.
    await copy(`${reg.address}/multi/arch:v1`, `oci:${join(dir, 'back')}:v1`, client);
    for (const b of [index, ...manifests, ...blobs]) {
      const stored = await readFile(join(dir, 'back', 'blobs', 'sha256', b.desc.digest.slice(7)));
      assert.ok(stored.equals(b.bytes), `${b.desc.digest} identical`);
    }
    // Again: everything exists now.
    const again = await copy(`${reg.address}/multi/arch:v1`, `oci:${join(dir, 'back')}:v1`, client);
    assert.ok(again.contents.every((c) => c.status === 'exists'));
    assert.equal(again.bytesTransferred, 0);
  });

  it('mounts between repositories of the same registry and streams across registries', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 2 });
    await writeLayout(join(dir, 'src'), img.manifest, img.blobs, 'v1');
    await copy(`oci:${join(dir, 'src')}:v1`, `${reg.address}/a/img:v1`, client);

    const mounted = await copy(`${reg.address}/a/img:v1`, `${reg.address}/b/img:v1`, client);
    assert.deepEqual(
      mounted.contents.filter((c) => c.kind === 'blob').map((c) => c.status),
      ['mounted', 'mounted', 'mounted'],
    );
    assert.equal(mounted.bytesTransferred, 0);

    const other = await tempRegistry();
    try {
      const across = await copy(`${reg.address}/a/img:v1`, `${other.address}/c/img:v2`, client, 1);
      assert.deepEqual(
        across.contents.filter((c) => c.kind === 'blob').map((c) => c.status),
        ['uploaded', 'uploaded', 'uploaded'],
      );
      assert.equal(
        across.bytesTransferred,
        img.blobs.reduce((n, b) => n + b.desc.size, 0),
      );
      const back = await openLocationForReading(`${other.address}/c/img:v2`, { client });
      assert.equal(back.root.digest, img.manifest.desc.digest);
      assert.ok((await readManifestBytes(back.store, back.root)).equals(img.manifest.bytes));
      await back.close();
    } finally {
      await other.stop();
    }
  });

  it('copies an artifact of any type verbatim and does not follow its subject', async (t) => {
    const dir = await tempDir(t);
    const subject = await containerImage('amd64', { layers: 1, seed: 7 });
    const data: Blob = { desc: { mediaType: 'application/vnd.example.sbom+json', digest: '', size: 0 }, bytes: Buffer.from('{"sbom": true}') };
    data.desc = { ...data.desc, digest: sha(data.bytes), size: data.bytes.length };
    const empty: Blob = { desc: { mediaType: MediaType.ociEmpty, digest: sha(Buffer.from('{}')), size: 2 }, bytes: Buffer.from('{}') };
    // Odd spacing on purpose: the bytes must travel exactly as they are.
    const bytes = Buffer.from(`{ "schemaVersion":2,"mediaType":"${MediaType.ociManifest}",  "artifactType":"application/vnd.example.sbom",
 "config":${JSON.stringify(empty.desc)},"layers":[${JSON.stringify(data.desc)}],"subject":${JSON.stringify(subject.manifest.desc)} }`);
    const artifact: Blob = { desc: { mediaType: MediaType.ociManifest, digest: sha(bytes), size: bytes.length }, bytes };
    await writeLayout(join(dir, 'src'), artifact, [empty, data], 'sbom');

    const r = await copy(`oci:${join(dir, 'src')}:sbom`, `${reg.address}/art/sbom:v1`, client);
    assert.equal(r.root.digest, artifact.desc.digest);
    assert.ok(!r.contents.some((c) => c.digest === subject.manifest.desc.digest), 'subject not copied');
    const back = await openLocationForReading(`${reg.address}/art/sbom:v1`, { client });
    assert.ok((await readManifestBytes(back.store, back.root)).equals(bytes));
    await back.close();
  });

  it('refuses a manifest over the size cap before reading it, and leaves a layout destination untouched on failure', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1 });
    await writeLayout(join(dir, 'src'), img.manifest, img.blobs, 'v1');
    const s = await openLocationForReading(`oci:${join(dir, 'src')}:v1`);
    const d = await openLocationForWriting(`oci:${join(dir, 'dst')}:v1`);
    await assert.rejects(copyGraph(s.store, d.store, s.root, { maxManifestBytes: 100, tags: ['v1'] }), (e: OciError) => e.code === 'SIZE_EXCEEDS_LIMIT');
    await d.abort();
    await s.close();
    assert.deepEqual(await entriesLeft(join(dir, 'dst', 'blobs', 'sha256')), []);
    await assert.rejects(readFile(join(dir, 'dst', 'index.json')), /ENOENT/);
  });

  it('fails a copy whose source blob is corrupt, without tagging', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1 });
    const layer = img.blobs[1]!;
    const bad: Blob = { desc: layer.desc, bytes: Buffer.from(layer.bytes) };
    bad.bytes[100]! ^= 1;
    // Store the corrupt bytes under the right name, as a damaged disk would.
    await writeLayout(join(dir, 'src'), img.manifest, [img.blobs[0]!], 'v1');
    await mkdir(join(dir, 'src', 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'src', 'blobs', 'sha256', layer.desc.digest.slice(7)), bad.bytes);
    await assert.rejects(copy(`oci:${join(dir, 'src')}:v1`, `${reg.address}/bad/img:v1`, client), (e: OciError) => e.code === 'DIGEST_MISMATCH');
    const repo = client.repository(`${reg.address}/bad/img`);
    await assert.rejects(repo.resolve('v1'), (e: OciError) => e.code === 'NOT_FOUND');
    assert.equal(await repo.exists(layer.desc), false, 'the corrupt blob did not land');
  });
});

describe('copyGraph failures', () => {
  it('stops after the first failure and waits for running transfers, so abort() leaves a layout clean', async (t) => {
    const dir = await tempDir(t);
    const { index, manifests, blobs } = await multiArchIndex(['amd64', 'arm64', 'ppc64le'], { layerSize: 300_000 });
    await writeLayout(join(dir, 'src'), index, [...blobs, ...manifests], 'v1');
    const victim = blobs[4]!;
    const bad = Buffer.from(victim.bytes);
    bad[10]! ^= 1;
    await writeFile(join(dir, 'src', 'blobs', 'sha256', victim.desc.digest.slice(7)), bad);
    const s = await openLocationForReading(`oci:${join(dir, 'src')}:v1`);
    const d = await openLocationForWriting(`oci:${join(dir, 'dst')}:v1`);
    let finishedAfterReject = 0;
    let rejected = false;
    await assert.rejects(
      copyGraph(s.store, d.store, s.root, {
        jobs: 4,
        tags: ['v1'],
        progress: (e) => {
          if ((e.type === 'blob-done' || e.type === 'manifest') && rejected) finishedAfterReject++;
        },
      }).finally(() => {
        rejected = true;
      }),
      (e: OciError) => e.code === 'DIGEST_MISMATCH' && e.message.includes(victim.desc.digest),
    );
    await d.abort();
    await s.close();
    // Give any straggler a chance to show up: there must be none.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(finishedAfterReject, 0);
    assert.deepEqual(await entriesLeft(join(dir, 'dst', 'blobs', 'sha256')), []);
  });
});

describe('locations', () => {
  it('parses every kind and refuses a digest-only layout destination', async (t) => {
    assert.equal(parseLocation('oci:/tmp/x:v1').tag, 'v1');
    assert.equal(parseLocation('oci-archive:/tmp/x.tar').kind, 'oci-archive');
    const r = parseLocation('localhost:5000/a/b:v2');
    assert.equal(r.kind, 'registry');
    assert.equal(r.reference?.registry, 'localhost:5000');
    assert.equal(r.tag, 'v2');
    assert.throws(
      () => parseLocation('docker://localhost:5000/a'),
      (e: OciError) => e.code === 'INVALID_REFERENCE',
    );
    const dir = await tempDir(t);
    await assert.rejects(openLocationForWriting(`oci:${dir}@sha256:${'a'.repeat(64)}`), (e: OciError) => e.code === 'INVALID_REFERENCE');
    const w = await openLocationForWriting(`oci:${join(dir, 'new')}`);
    assert.equal(w.tag, 'latest');
    await w.close();
    await assert.rejects(openLocationForReading(`oci:${join(dir, 'missing')}`), (e: OciError) => e.code === 'NOT_FOUND');
  });

  it('reads a layout by digest (also a manifest index.json does not list), with a root descriptor free of index annotations', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('arm64', { layers: 1 });
    await writeLayout(join(dir, 'l'), img.manifest, img.blobs, 'v1');
    const byDigest = await openLocationForReading(`oci:${join(dir, 'l')}@${img.manifest.desc.digest}`);
    assert.deepEqual(byDigest.root, { mediaType: MediaType.ociManifest, digest: img.manifest.desc.digest, size: img.manifest.desc.size });
    const stream = await byDigest.store.fetch(byDigest.root);
    const chunks: Buffer[] = [];
    for await (const c of Readable.from(stream)) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(img.manifest.bytes));
    await byDigest.close();

    // One platform of an index, by digest, though index.json lists only the index.
    const multi = await multiArchIndex(['amd64', 'arm64'], { layerSize: 1000 });
    await writeLayout(join(dir, 'm'), multi.index, [...multi.blobs, ...multi.manifests], 'v1');
    const child = await openLocationForReading(`oci:${join(dir, 'm')}@${multi.manifests[1]!.desc.digest}`);
    assert.deepEqual(child.root, { mediaType: MediaType.ociManifest, digest: multi.manifests[1]!.desc.digest, size: multi.manifests[1]!.desc.size });
    await child.close();
    await assert.rejects(
      openLocationForReading(`oci:${join(dir, 'm')}@${multi.blobs[1]!.desc.digest}`),
      (e: OciError) => e.code === 'NOT_FOUND',
      'a layer is not a root',
    );
  });
});
