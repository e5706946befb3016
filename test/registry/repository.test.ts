import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { canonicalJson } from '../../src/oci/json.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { startRegistryServer } from '../../src/server/index.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { blobFromRegistry, fastClient, MiB, randomBytesStream, randomDigest } from './helpers.js';

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

test('repository store: blobs, manifests, resolve, tag, mount, and skopeo reads what we pushed', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const { client } = fastClient({ chunkSize: MiB });
  t.after(() => client.close());
  const repo = client.repository(`${reg.host}/store/app:v1`);
  assert.equal(repo.name, 'store/app');

  const layerSize = 2 * MiB + 17;
  const layerDigest = await randomDigest(layerSize, 21);
  const layer = { mediaType: MediaType.ociLayer, digest: layerDigest, size: layerSize };
  const configBytes = canonicalJson({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] } });
  const config = { mediaType: MediaType.ociConfig, digest: sha256Digest(configBytes), size: configBytes.length };
  const manifestBytes = canonicalJson({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] });
  const manifest = { mediaType: MediaType.ociManifest, digest: sha256Digest(manifestBytes), size: manifestBytes.length };

  assert.equal(await repo.exists(layer), false);
  const up = await repo.pushContent(layer, randomBytesStream(layerSize, 21));
  assert.equal(up.status, 'uploaded');
  assert.equal(up.uploadedBytes, layerSize);
  const again = await repo.pushContent(layer, randomBytesStream(layerSize, 21));
  assert.equal(again.status, 'exists');
  assert.equal(again.uploadedBytes, 0);
  await repo.push(config, Readable.from([configBytes]));
  // A known descriptor whose content does not match is refused before the blob is committed.
  await assert.rejects(repo.push({ ...config, digest: sha256Digest('other') }, Readable.from([configBytes])), (e: unknown) => isOciError(e, 'DIGEST_MISMATCH'));

  await repo.push(manifest, Readable.from([manifestBytes]));
  assert.ok(await repo.exists(manifest));
  await repo.tag(manifest, 'v1');
  const resolved = await repo.resolve('v1');
  assert.deepEqual(resolved, manifest);
  assert.deepEqual(await collect(await repo.fetch(manifest)), manifestBytes);
  assert.deepEqual(await blobFromRegistry(reg.url, repo.name, layerDigest), { digest: layerDigest, size: layerSize });
  await assert.rejects(repo.resolve('missing'), (e: unknown) => isOciError(e, 'NOT_FOUND'));
  await assert.rejects(repo.fetch({ ...config, digest: sha256Digest('nope') }), (e: unknown) => isOciError(e, 'NOT_FOUND'));

  // putManifest under a tag, then tag again from a fresh repository object (bytes fetched by digest).
  const other = client.repository(`${reg.host}/store/app`);
  await other.tag(manifest, 'v2');
  assert.equal((await other.resolve('v2')).digest, manifest.digest);

  // Mount into another repository: 201, nothing uploaded.
  const mirror = client.repository(`${reg.host}/store/mirror`);
  const mounted = await mirror.pushContent(layer, randomBytesStream(layerSize, 21), { mountFrom: 'store/app' });
  assert.equal(mounted.status, 'mounted');
  assert.ok(await mirror.mount(config, 'store/app'));
  assert.equal(await mirror.mount({ digest: sha256Digest('absent') }, 'store/app'), false);
  assert.deepEqual(
    mirror.results.map((r) => r.status),
    ['mounted', 'mounted'],
  );
  // A mount the registry cannot do answers 202: the blob is uploaded into that session.
  const fresh = { mediaType: MediaType.ociLayer, digest: await randomDigest(MiB + 1, 22), size: MiB + 1 };
  const viaSession = await mirror.pushContent(fresh, randomBytesStream(MiB + 1, 22), { mountFrom: 'store/nothing-here' });
  assert.equal(viaSession.status, 'uploaded');
  assert.deepEqual(await blobFromRegistry(reg.url, mirror.name, fresh.digest), { digest: fresh.digest, size: fresh.size });

  // skopeo (another client) copies what we pushed, byte for byte.
  const dir = await mkdtemp(join(tmpdir(), 'oci-os-skopeo-out-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await skopeo(['copy', '--preserve-digests', '--src-tls-verify=false', `docker://${reg.host}/store/app:v1`, `oci:${dir}:v1`]);
  const blobs = await readdir(join(dir, 'blobs', 'sha256'));
  assert.ok(blobs.includes(layerDigest.slice(7)) && blobs.includes(manifest.digest.slice(7)));
  assert.deepEqual(await readFile(join(dir, 'blobs', 'sha256', manifest.digest.slice(7))), manifestBytes);
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/store/app:v2`]);
  assert.equal(sha256Digest(raw.stdout), manifest.digest);
});

test('resume from a partial chunk against a registry that keeps partial bytes (embedded registry)', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'oci-os-embedded-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const reg = await startRegistryServer({ root, host: '127.0.0.1', port: 0 });
  t.after(() => reg.close());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  proxy.addRule(
    { method: 'PATCH', path: /\/blobs\/uploads\//, nth: 2, action: { type: 'reset', afterBytes: 700 * 1024 } },
    { method: 'PATCH', path: /\/blobs\/uploads\//, nth: 4, action: { type: 'reset', afterBytes: 10 } },
  );
  const { client } = fastClient({ chunkSize: MiB });
  t.after(() => client.close());
  const size = 5 * MiB + 99;
  const r = await client.repository(`${proxy.host}/embedded/resume`).uploadStream(randomBytesStream(size, 31));
  assert.equal(r.digest, await randomDigest(size, 31));
  assert.equal(r.upload!.resumes, 2);
  assert.equal(r.upload!.restarts, 0);
  const sent = proxy.log.filter((e) => e.method === 'PATCH' || e.method === 'PUT').reduce((n, e) => n + e.requestBodyBytes, 0);
  // Bytes that reached the registry before a cut are not sent again (the upload continues at the
  // registry's Range); only the part of each cut chunk that was lost crosses the wire twice.
  assert.ok(sent - size <= 2 * MiB, `re-sent ${sent - size} bytes for two cuts of 1 MiB chunks`);
  const patches = proxy.log.filter((e) => e.method === 'PATCH');
  assert.equal(patches[1]!.requestBodyBytes, 700 * 1024);
  const resumedAt = Number(patches[2]!.contentRange!.split('-')[0]);
  assert.ok(resumedAt >= MiB && resumedAt <= MiB + 700 * 1024, `resumed at ${resumedAt}`);
  assert.deepEqual(await blobFromRegistry(reg.url, 'embedded/resume', r.digest), { digest: r.digest, size });
});

test('chunk sizes follow OCI-Chunk-Min-Length and shrink on 413 (embedded registry)', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'oci-os-embedded-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const limits of [{ chunkMinLength: 2 * MiB }, { chunkMaxLength: 600 * 1024 }]) {
    const reg = await startRegistryServer({ root, host: '127.0.0.1', port: 0, ...limits });
    const proxy = await startFaultProxy(reg.url);
    const { client } = fastClient({ chunkSize: MiB });
    try {
      const size = 5 * MiB + 3;
      const r = await client.repository(`${proxy.host}/embedded/limits`).uploadStream(randomBytesStream(size, 33));
      assert.equal(r.digest, await randomDigest(size, 33));
      const patches = proxy.log.filter((e) => e.method === 'PATCH' && e.status === 202);
      if (limits.chunkMinLength) {
        assert.equal(r.upload!.chunkSize, 2 * MiB);
        assert.ok(patches.every((e) => e.requestBodyBytes === 2 * MiB));
      } else {
        assert.equal(r.upload!.chunkSize, 512 * 1024);
        assert.ok(patches.every((e) => e.requestBodyBytes <= 600 * 1024));
        assert.equal(proxy.log.filter((e) => e.status === 413).length, 1);
      }
      assert.deepEqual(await blobFromRegistry(reg.url, 'embedded/limits', r.digest), { digest: r.digest, size });
    } finally {
      await client.close();
      await proxy.stop();
      await reg.close();
    }
  }
});

test('a blob the registry has already is not read: its source is destroyed, a StoppableSource too (embedded registry)', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'oci-os-embedded-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const reg = await startRegistryServer({ root, host: '127.0.0.1', port: 0 });
  t.after(() => reg.close());
  const { client } = fastClient({});
  t.after(() => client.close());
  const repo = client.repository(`${new URL(reg.url).host}/embedded/exists`);
  const bytes = Buffer.from('a blob pushed before');
  const desc = { mediaType: MediaType.octetStream, digest: sha256Digest(bytes), size: bytes.length };
  await repo.push(desc, Readable.from([bytes]));

  // A source that would hang if read (a copy's registry source that stalled), and says when it is destroyed.
  let destroyed = false;
  const hanging = {
    [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<Uint8Array>>(() => {}) }),
    destroy: () => {
      destroyed = true;
    },
  };
  const r = await repo.pushContent(desc, hanging);
  assert.equal(r.status, 'exists');
  assert.ok(destroyed, 'the source was destroyed, not left to its own end');
});
