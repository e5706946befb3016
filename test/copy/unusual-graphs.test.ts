/**
 * Graph walks over unusual but valid (or subtly invalid) content: index
 * entries that are manifests of other types, descriptors whose size is
 * larger than the blob, and one digest referenced with two sizes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { openLocationForReading } from '../../src/copy/locations.js';
import { isOciError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { RegistryClient } from '../../src/registry/client.js';
import { fetchBlobResumable } from '../../src/registry/fetch-resume.js';
import { verifyGraph } from '../../src/tasks/verify.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { tempRegistry } from '../server/helpers.js';
import { artifactManifestOf, blobOf as blob, containerImage, copyLocations, indexOf as index, json, sha, writeLayout } from './fixtures.js';

type Reg = Awaited<ReturnType<typeof tempRegistry>>;

const copy = (src: string, dst: string, client?: RegistryClient) => copyLocations(src, dst, client);

async function verify(location: string) {
  const s = await openLocationForReading(location);
  try {
    return await verifyGraph(s.store, s.root);
  } finally {
    await s.close();
  }
}

const rejectsWith =
  (code: string, ...patterns: RegExp[]) =>
  (err: unknown): boolean => {
    assert.ok(isOciError(err), String(err));
    assert.equal(err.code, code, err.message);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  };

describe('copy: index entries are manifests', () => {
  let reg: Reg;
  let client: RegistryClient;
  const paths: string[] = [];
  before(async () => {
    reg = await tempRegistry({
      hooks: {
        onRequest(req) {
          paths.push(`${req.method} ${req.url}`);
          return false;
        },
      },
    });
    client = new RegistryClient({ retry: { retries: 0 } });
  });
  after(async () => {
    await client.close();
    await reg.stop();
  });

  it('copies an OCI artifact manifest listed in an index as a manifest, with the blobs it references', async (t) => {
    const dir = await tempDir(t);
    const payload = blob('application/vnd.example.sbom+json', json({ sbom: true }));
    const artifact = artifactManifestOf('application/vnd.example.sbom', [payload.desc]);
    const root = index([artifact.desc]);
    await writeLayout(join(dir, 'src'), root, [payload, artifact], 'v1');
    const r = await copy(`oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`);
    const kinds = Object.fromEntries(r.contents.map((c) => [c.digest, c.kind]));
    assert.deepEqual(kinds, { [payload.desc.digest]: 'blob', [artifact.desc.digest]: 'manifest', [root.desc.digest]: 'manifest' });
    const v = await verify(`oci:${join(dir, 'dst')}:v1`);
    assert.equal(v.manifests, 2);
    assert.equal(v.blobs, 1);
  });

  it('asks a registry for an artifact manifest at /manifests/, not /blobs/', async () => {
    const repo = client.repository(`${reg.address}/r/artifact`);
    const desc = { mediaType: MediaType.ociArtifactManifest, digest: sha(Buffer.from('x')), size: 1 };
    paths.length = 0;
    assert.equal(await repo.exists(desc), false);
    await assert.rejects(repo.fetch(desc), rejectsWith('NOT_FOUND'));
    assert.deepEqual(paths, [`HEAD /v2/r/artifact/manifests/${desc.digest}`, `GET /v2/r/artifact/manifests/${desc.digest}`]);
  });

  for (const mediaType of [MediaType.dockerSchema1Signed, MediaType.dockerSchema1Manifest]) {
    it(`refuses a Docker schema 1 entry (${mediaType}) naming it, and tags nothing`, async (t) => {
      const dir = await tempDir(t);
      const img = await containerImage('amd64', { layers: 1, layerSize: 1000 });
      const entry = { ...img.manifest.desc, mediaType };
      const root = index([entry]);
      await writeLayout(join(dir, 'src'), root, [...img.blobs, img.manifest], 'v1');
      await assert.rejects(
        copy(`oci:${join(dir, 'src')}:v1`, `${reg.address}/r/schema1:v1`, client),
        rejectsWith('UNSUPPORTED', /schema 1/, new RegExp(entry.digest), /manifests\[0\]/),
      );
      assert.equal((await fetch(`${reg.url}/v2/r/schema1/manifests/v1`)).status, 404);
    });
  }

  it('refuses an index entry of unknown media type instead of copying it as a blob', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1, layerSize: 1000 });
    const entry = { ...img.manifest.desc, mediaType: 'application/vnd.example.thing+json' };
    const root = index([entry]);
    await writeLayout(join(dir, 'src'), root, [...img.blobs, img.manifest], 'v1');
    await assert.rejects(
      copy(`oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`),
      rejectsWith('UNSUPPORTED', /application\/vnd\.example\.thing\+json/, new RegExp(entry.digest)),
    );
  });

  it('still copies buildx attestation manifests (plain image manifests) to a registry', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1, layerSize: 1000 });
    const statement = blob('application/vnd.in-toto+json', json({ _type: 'https://in-toto.io/Statement/v0.1' }));
    const config = blob(MediaType.ociConfig, json({ architecture: 'unknown', os: 'unknown', rootfs: { type: 'layers', diff_ids: [] } }));
    const attestation = blob(
      MediaType.ociManifest,
      json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: config.desc, layers: [statement.desc] }),
    );
    const root = index([
      { ...img.manifest.desc, platform: { architecture: 'amd64', os: 'linux' } },
      {
        ...attestation.desc,
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': img.manifest.desc.digest },
      } as Descriptor,
    ]);
    await writeLayout(join(dir, 'src'), root, [...img.blobs, img.manifest, statement, config, attestation], 'v1');
    const r = await copy(`oci:${join(dir, 'src')}:v1`, `${reg.address}/r/buildx:v1`, client);
    assert.equal(r.contents.filter((c) => c.kind === 'manifest').length, 3);
    assert.ok(r.contents.some((c) => c.digest === statement.desc.digest && c.kind === 'blob'));
  });
});

describe('resumable fetch: a descriptor larger than the blob', () => {
  let reg: Reg;
  let client: RegistryClient;
  const ranges: string[] = [];
  const data = pseudoRandom(300_000, 9);
  before(async () => {
    reg = await tempRegistry({
      hooks: {
        onRequest(req) {
          if (req.headers.range) ranges.push(String(req.headers.range));
          return false;
        },
      },
    });
    client = new RegistryClient({ retry: { retries: 3, baseDelayMs: 1 } });
    await client
      .repository(`${reg.address}/r/short`)
      .pushContent({ mediaType: MediaType.octetStream, digest: sha(data), size: data.length }, Readable.from([data]));
  });
  after(async () => {
    await client.close();
    await reg.stop();
  });

  it('fails at once with SIZE_MISMATCH, without Range requests', async () => {
    const desc = { mediaType: MediaType.octetStream, digest: sha(data), size: data.length + 5 };
    const resumes: number[] = [];
    const s = await fetchBlobResumable(client.repository(`${reg.address}/r/short`), desc, { onResume: (i) => resumes.push(i.offset) });
    await assert.rejects(
      (async () => {
        for await (const _ of s) {
          /* drain */
        }
      })(),
      rejectsWith('SIZE_MISMATCH', new RegExp(`serves ${data.length} bytes, the descriptor says ${data.length + 5}`)),
    );
    assert.deepEqual(resumes, []);
    assert.deepEqual(ranges, []);
  });
});

describe('one digest referenced with two sizes', () => {
  async function twoSizes(t: Parameters<typeof tempDir>[0], shape: 'manifest' | 'index'): Promise<{ src: string; dir: string; digest: string }> {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1, layerSize: 1000 });
    const m = JSON.parse(img.manifest.bytes.toString('utf8'));
    const layer = m.layers[0] as Descriptor;
    const wrong = { ...layer, size: layer.size + 5 };
    const src = join(dir, 'src');
    if (shape === 'manifest') {
      const bad = blob(MediaType.ociManifest, json({ ...m, layers: [layer, wrong] }));
      await writeLayout(src, bad, img.blobs, 'v1');
    } else {
      const bad = blob(MediaType.ociManifest, json({ ...m, layers: [wrong] }));
      await writeLayout(src, index([img.manifest.desc, bad.desc]), [...img.blobs, img.manifest, bad], 'v1');
    }
    return { src, dir, digest: layer.digest };
  }

  it('copy refuses with INVALID_FORMAT naming both sizes', async (t) => {
    const { src, dir, digest } = await twoSizes(t, 'manifest');
    await assert.rejects(
      copy(`oci:${src}:v1`, `oci:${join(dir, 'dst')}:v1`),
      rejectsWith('INVALID_FORMAT', new RegExp(digest), /\d+ bytes in manifest sha256:\w+ but \d+ bytes in manifest/),
    );
  });

  it('verify refuses it too, also across manifests of an index', async (t) => {
    for (const shape of ['manifest', 'index'] as const) {
      const { src, digest } = await twoSizes(t, shape);
      await assert.rejects(verify(`oci:${src}:v1`), (err: unknown) => {
        assert.ok(isOciError(err), String(err));
        assert.ok(err.code === 'INVALID_FORMAT' || err.code === 'SIZE_MISMATCH', `${shape}: ${err.code} ${err.message}`);
        if (shape === 'manifest') assert.equal(err.code, 'INVALID_FORMAT');
        assert.match(err.message, new RegExp(digest));
        return true;
      });
    }
  });
});
