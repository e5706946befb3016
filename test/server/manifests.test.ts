import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call, errorCode, imageManifest, pushBlob, pushManifest, sha, tempRegistry } from './helpers.js';

type Reg = Awaited<ReturnType<typeof tempRegistry>>;

describe('registry server: manifests, tags and referrers', () => {
  let reg: Reg;
  before(async () => {
    reg = await tempRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  /** Pushes a config and one layer to `name` and returns a manifest over them. */
  async function image(name: string, seed: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const config = `{"seed":"${seed}"}`;
    const layer = `layer of ${seed}`;
    await pushBlob(reg, name, config);
    await pushBlob(reg, name, layer);
    return imageManifest({ digest: sha(config), size: config.length }, [{ digest: sha(layer), size: layer.length }], extra);
  }

  it('stores a manifest by tag, byte for byte, and serves it by tag and by digest with GET and HEAD', async () => {
    const m = await image('apps/web', 'v1');
    const bytes = Buffer.from(JSON.stringify(m, null, 3) + '\n');
    const digest = sha(bytes);
    const put = await call(reg, 'PUT', '/v2/apps/web/manifests/v1', {
      body: bytes,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(put.status, 201, put.text);
    assert.equal(put.header('docker-content-digest'), digest);
    assert.equal(put.header('location'), `/v2/apps/web/manifests/${digest}`);
    assert.equal(put.header('oci-subject'), undefined);
    for (const ref of ['v1', digest]) {
      const get = await call(reg, 'GET', `/v2/apps/web/manifests/${ref}`);
      assert.equal(get.status, 200);
      assert.equal(get.text, bytes.toString());
      assert.equal(get.header('content-type'), 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(get.header('docker-content-digest'), digest);
      const head = await call(reg, 'HEAD', `/v2/apps/web/manifests/${ref}`);
      assert.equal(head.status, 200);
      assert.equal(head.header('content-length'), String(bytes.length));
      assert.equal(head.header('docker-content-digest'), digest);
      assert.equal(head.text, '');
    }
  });

  it('verifies the digest of a manifest PUT by digest and applies ?tag= parameters', async () => {
    const m = await image('bydigest', 'd');
    const { digest, bytes } = await pushManifest(reg, 'bydigest', sha('other bytes'), m);
    const bad = await call(reg, 'PUT', `/v2/bydigest/manifests/${sha('other bytes')}`, {
      body: bytes,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(bad.status, 400);
    assert.equal(errorCode(bad), 'DIGEST_INVALID');
    assert.equal((await call(reg, 'HEAD', `/v2/bydigest/manifests/${digest}`)).status, 404);
    const good = await call(reg, 'PUT', `/v2/bydigest/manifests/${digest}?tag=a&tag=b`, {
      body: bytes,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(good.status, 201, good.text);
    assert.equal(good.header('oci-tag'), 'a, b');
    assert.equal((await call(reg, 'GET', '/v2/bydigest/manifests/b')).header('docker-content-digest'), digest);
  });

  it('refuses a manifest that references a missing blob with MANIFEST_BLOB_UNKNOWN', async () => {
    const m = await image('missing', 'm');
    const absent = sha('never pushed');
    (m.layers as Array<Record<string, unknown>>).push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: absent, size: 12 });
    const { answer } = await pushManifest(reg, 'missing', 'latest', m);
    assert.equal(answer.status, 400);
    assert.equal(errorCode(answer), 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(answer.json.errors[0].detail.digest, absent);
    assert.equal((await call(reg, 'GET', '/v2/missing/manifests/latest')).status, 404);

    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: absent, size: 1 }],
    };
    const idx = await pushManifest(reg, 'missing', 'index', index, 'application/vnd.oci.image.index.v1+json');
    assert.equal(idx.answer.status, 400);
    assert.equal(errorCode(idx.answer), 'MANIFEST_BLOB_UNKNOWN');
  });

  it('refuses malformed manifests and unknown media types with MANIFEST_INVALID', async () => {
    const m = await image('invalid', 'i');
    const cases: Array<[string, string]> = [
      ['not json', 'application/vnd.oci.image.manifest.v1+json'],
      [JSON.stringify({ ...m, schemaVersion: 1 }), 'application/vnd.oci.image.manifest.v1+json'],
      [JSON.stringify(m), 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
      [JSON.stringify(m), 'application/vnd.oci.image.index.v1+json'],
      [JSON.stringify({ ...m, layers: 'nope' }), 'application/vnd.oci.image.manifest.v1+json'],
    ];
    for (const [body, type] of cases) {
      const a = await call(reg, 'PUT', '/v2/invalid/manifests/t', { body, headers: { 'content-type': type } });
      assert.equal(a.status, 400, `${type}: ${body.slice(0, 40)}`);
      assert.equal(errorCode(a), 'MANIFEST_INVALID');
    }
  });

  it('accepts Docker schema 2 manifests and manifest lists, and OCI indexes over stored manifests', async () => {
    const m = await image('docker', 'dk');
    const dockerManifest = { ...m, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' };
    (dockerManifest as Record<string, any>).config.mediaType = 'application/vnd.docker.container.image.v1+json';
    const child = await pushManifest(reg, 'docker', undefined, dockerManifest, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(child.answer.status, 201, child.answer.text);
    const list = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [
        {
          mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
          digest: child.digest,
          size: child.bytes.length,
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    };
    const l = await pushManifest(reg, 'docker', 'multi', list, 'application/vnd.docker.distribution.manifest.list.v2+json');
    assert.equal(l.answer.status, 201, l.answer.text);
    const get = await call(reg, 'GET', '/v2/docker/manifests/multi');
    assert.equal(get.header('content-type'), 'application/vnd.docker.distribution.manifest.list.v2+json');
    assert.equal(get.text, l.bytes.toString());
  });

  it('deletes a tag by tag and a manifest (with its tags) by digest', async () => {
    const m = await image('deleting', 'x');
    const { digest, answer } = await pushManifest(reg, 'deleting', 'one', m);
    assert.equal(answer.status, 201);
    await pushManifest(reg, 'deleting', 'two', m);
    const delTag = await call(reg, 'DELETE', '/v2/deleting/manifests/one');
    assert.equal(delTag.status, 202);
    assert.equal((await call(reg, 'GET', '/v2/deleting/manifests/one')).status, 404);
    assert.equal((await call(reg, 'GET', '/v2/deleting/manifests/two')).status, 200);
    const del = await call(reg, 'DELETE', `/v2/deleting/manifests/${digest}`);
    assert.equal(del.status, 202);
    const gone = await call(reg, 'GET', `/v2/deleting/manifests/${digest}`);
    assert.equal(gone.status, 404);
    assert.equal(errorCode(gone), 'MANIFEST_UNKNOWN');
    assert.equal((await call(reg, 'HEAD', '/v2/deleting/manifests/two')).status, 404);
    assert.deepEqual((await call(reg, 'GET', '/v2/deleting/tags/list')).json.tags, []);
    assert.equal((await call(reg, 'DELETE', `/v2/deleting/manifests/${digest}`)).status, 404);
  });

  it('lists tags in lexical order, paginated with n, last and a Link header', async () => {
    const m = await image('tagged', 't');
    const tags = ['v3', 'latest', 'v1', 'v2', 'beta'];
    for (const t of tags) assert.equal((await pushManifest(reg, 'tagged', t, m)).answer.status, 201);
    const all = await call(reg, 'GET', '/v2/tagged/tags/list');
    assert.equal(all.status, 200);
    assert.deepEqual(all.json, { name: 'tagged', tags: [...tags].sort() });
    assert.equal(all.header('link'), undefined);

    const seen: string[] = [];
    let path: string | undefined = '/v2/tagged/tags/list?n=2';
    let pages = 0;
    while (path) {
      const page = await call(reg, 'GET', path);
      assert.equal(page.status, 200);
      assert.ok(page.json.tags.length <= 2);
      seen.push(...page.json.tags);
      const link = page.header('link');
      path = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
      if (link) assert.ok(path, link);
      pages++;
    }
    assert.deepEqual(seen, [...tags].sort());
    assert.equal(pages, 3);
    const afterV1 = await call(reg, 'GET', '/v2/tagged/tags/list?last=v1');
    assert.deepEqual(afterV1.json.tags, ['v2', 'v3']);
    const unknown = await call(reg, 'GET', '/v2/no/such/repo/tags/list');
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), 'NAME_UNKNOWN');
  });

  it('lists referrers of a digest, filtered by artifactType, and answers OCI-Subject', async () => {
    const m = await image('refs', 'subject');
    const subject = await pushManifest(reg, 'refs', 'main', m);
    const subjectDesc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.bytes.length };
    const empty = '{}';
    await pushBlob(reg, 'refs', empty);
    const emptyDesc = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 };
    const sig = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.signature',
      config: emptyDesc,
      layers: [emptyDesc],
      subject: subjectDesc,
      annotations: { 'org.example.kind': 'sig' },
    };
    const sbomConfig = '{"sbom":true}';
    await pushBlob(reg, 'refs', sbomConfig);
    const sbom = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.example.sbom', digest: sha(sbomConfig), size: sbomConfig.length },
      layers: [emptyDesc],
      subject: subjectDesc,
    };
    const s1 = await pushManifest(reg, 'refs', undefined, sig);
    assert.equal(s1.answer.status, 201, s1.answer.text);
    assert.equal(s1.answer.header('oci-subject'), subject.digest);
    const s2 = await pushManifest(reg, 'refs', undefined, sbom);
    assert.equal(s2.answer.header('oci-subject'), subject.digest);

    const all = await call(reg, 'GET', `/v2/refs/referrers/${subject.digest}`);
    assert.equal(all.status, 200);
    assert.equal(all.header('content-type'), 'application/vnd.oci.image.index.v1+json');
    assert.equal(all.json.schemaVersion, 2);
    const byDigest = new Map<string, any>(all.json.manifests.map((d: any) => [d.digest, d]));
    assert.equal(byDigest.size, 2);
    assert.deepEqual(byDigest.get(s1.digest), {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: s1.digest,
      size: s1.bytes.length,
      artifactType: 'application/vnd.example.signature',
      annotations: { 'org.example.kind': 'sig' },
    });
    assert.equal(byDigest.get(s2.digest).artifactType, 'application/vnd.example.sbom');

    const filtered = await call(reg, 'GET', `/v2/refs/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`);
    assert.equal(filtered.header('oci-filters-applied'), 'artifactType');
    assert.deepEqual(
      filtered.json.manifests.map((d: any) => d.digest),
      [s2.digest],
    );

    const none = await call(reg, 'GET', `/v2/refs/referrers/${sha('nothing refers to me')}`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.json.manifests, []);

    assert.equal((await call(reg, 'DELETE', `/v2/refs/manifests/${s1.digest}`)).status, 202);
    const afterDelete = await call(reg, 'GET', `/v2/refs/referrers/${subject.digest}`);
    assert.deepEqual(
      afterDelete.json.manifests.map((d: any) => d.digest),
      [s2.digest],
    );
  });

  it('refuses manifests over the size limit with 413', async () => {
    const small = await tempRegistry({ maxManifestBytes: 1024 });
    try {
      const a = await call(small, 'PUT', '/v2/big/manifests/t', {
        body: JSON.stringify({ schemaVersion: 2, pad: 'x'.repeat(2000) }),
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(a.status, 413);
      assert.equal(errorCode(a), 'SIZE_INVALID');
    } finally {
      await small.stop();
    }
  });
});
