import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistryClient } from '../../src/registry/index.js';
import { attach, referrersTag } from '../../src/registry/referrers.js';
import { startRegistryServer } from '../../src/server/index.js';
import { type CliResult, repoRoot, runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { requireTools } from '../helpers/tools.js';

const kernel = join(repoRoot, 'fixtures', 'payloads', 'kernel.efi');
const env = (dir: string) => ({ HOME: dir, DOCKER_CONFIG: join(dir, 'docker'), OCI_OS_CACHE_DIR: join(dir, 'cache') });

async function pushSubject(host: string, dir: string): Promise<string> {
  const r = await runCli(['push', `${host}/rel/subject:1`, '-p', `kernel.efi=${kernel}`, '--no-cache', '--json'], { env: env(dir) });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).digest as string;
}

function json(r: CliResult): any {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function getIndex(url: string, tag: string): Promise<{ status: number; body?: any }> {
  const res = await fetch(`${url}/v2/rel/subject/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
}

test('attach without the referrers API: concurrent attaches both land in the fallback index; referrers lists them', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const dir = await tempDir(t);
  const subject = await pushSubject(reg.host, dir);
  await writeFile(join(dir, 'sbom.json'), '{"spdxVersion":"SPDX-2.3"}');
  await writeFile(join(dir, 'notes.md'), '# 1.0\n');

  const [a, b] = await Promise.all([
    runCli(
      ['attach', `${reg.host}/rel/subject:1`, '--artifact-type', 'application/spdx+json', '--file', join(dir, 'sbom.json'), '--annotation', 'k=sbom', '--json'],
      { env: env(dir) },
    ),
    runCli(['attach', `${reg.host}/rel/subject@${subject}`, '--artifact-type', 'application/vnd.example.notes', '--file', join(dir, 'notes.md'), '--json'], {
      env: env(dir),
    }),
  ]);
  const ra = json(a);
  const rb = json(b);
  assert.equal(ra.referrersSource, 'tag');
  assert.equal(ra.subject.digest, subject);
  assert.equal(ra.fallbackTag, referrersTag(subject));

  const index = await getIndex(reg.url, referrersTag(subject));
  assert.equal(index.status, 200);
  assert.equal(index.body.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(index.body.manifests.map((m: any) => m.digest).sort(), [ra.digest, rb.digest].sort());
  const sbomEntry = index.body.manifests.find((m: any) => m.digest === ra.digest);
  assert.equal(sbomEntry.artifactType, 'application/spdx+json');
  assert.deepEqual(sbomEntry.annotations, { k: 'sbom' });

  // The artifact itself: empty config, titled layer, subject.
  const art = (await (
    await fetch(`${reg.url}/v2/rel/subject/manifests/${ra.digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
  ).json()) as any;
  assert.equal(art.artifactType, 'application/spdx+json');
  assert.equal(art.config.mediaType, 'application/vnd.oci.empty.v1+json');
  assert.equal(art.layers[0].annotations['org.opencontainers.image.title'], 'sbom.json');
  assert.equal(art.subject.digest, subject);

  const [listedR, filteredR] = await Promise.all([
    runCli(['referrers', `${reg.host}/rel/subject:1`, '--json'], { env: env(dir) }),
    runCli(['referrers', `${reg.host}/rel/subject:1`, '--artifact-type', 'application/vnd.example.notes', '--json'], { env: env(dir) }),
  ]);
  const listed = json(listedR);
  assert.equal(listed.source, 'tag');
  assert.deepEqual(listed.referrers.map((m: any) => m.digest).sort(), [ra.digest, rb.digest].sort());
  const filtered = json(filteredR);
  assert.deepEqual(
    filtered.referrers.map((m: any) => m.digest),
    [rb.digest],
  );

  // Many writers at once, in process: nobody's entry is lost, and the same artifact again is not listed twice.
  const client = new RegistryClient({ env: env(dir) });
  t.after(() => client.close());
  const many = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      attach(client.repository(`${reg.host}/rel/subject:1`), {
        artifactType: 'application/vnd.example.n',
        files: [],
        annotations: { n: String(i) },
        settleMs: 200,
      }),
    ),
  );
  const again = await attach(client.repository(`${reg.host}/rel/subject:1`), {
    artifactType: 'application/vnd.example.n',
    files: [],
    annotations: { n: '0' },
    settleMs: 50,
  });
  assert.equal(again.digest, many[0]!.digest);
  const after = await getIndex(reg.url, referrersTag(subject));
  const digests = after.body.manifests.map((m: any) => m.digest);
  assert.equal(new Set(digests).size, digests.length, 'no duplicates');
  assert.deepEqual([...digests].sort(), [ra.digest, rb.digest, ...many.map((m) => m.digest)].sort());
});

test('attach with the referrers API (built-in registry): no fallback tag, referrers uses the API', async (t) => {
  const dir = await tempDir(t);
  const reg = await startRegistryServer({ root: join(dir, 'registry'), port: 0 });
  t.after(() => reg.close());
  const subject = await pushSubject(reg.address, dir);
  await writeFile(join(dir, 'sig.bin'), 'signature');
  const r = json(
    await runCli(['attach', `${reg.address}/rel/subject:1`, '--artifact-type', 'application/vnd.example.sig', '-f', join(dir, 'sig.bin'), '--json'], {
      env: env(dir),
    }),
  );
  assert.equal(r.referrersSource, 'api');
  assert.equal(r.fallbackTag, undefined);
  assert.equal((await getIndex(reg.url, referrersTag(subject))).status, 404, 'no fallback tag was written');
  const [listedR, noneR, bad, missing] = await Promise.all([
    runCli(['referrers', `${reg.address}/rel/subject:1`, '--json'], { env: env(dir) }),
    runCli(['referrers', `${reg.address}/rel/subject:1`, '--artifact-type', 'application/other', '--json'], { env: env(dir) }),
    runCli(['attach', `${reg.address}/rel/subject:1`, '--artifact-type', 'not a type', '-f', join(dir, 'sig.bin')], { env: env(dir) }),
    runCli(['attach', `${reg.address}/rel/subject:nope`, '--artifact-type', 'application/x', '-f', join(dir, 'sig.bin')], { env: env(dir) }),
  ]);
  const listed = json(listedR);
  assert.equal(listed.source, 'api');
  assert.deepEqual(
    listed.referrers.map((m: any) => [m.digest, m.artifactType]),
    [[r.digest, 'application/vnd.example.sig']],
  );
  assert.deepEqual(json(noneR).referrers, []);
  assert.equal(bad.code, 2, bad.stderr);
  assert.equal(missing.code, 4, missing.stderr);
});

test('attach without the referrers API after a referrer was deleted: the fallback index is written without it', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const dir = await tempDir(t);
  const subject = await pushSubject(reg.host, dir);
  await writeFile(join(dir, 'a.txt'), 'a');
  await writeFile(join(dir, 'b.txt'), 'b');
  const first = json(
    await runCli(['attach', `${reg.host}/rel/subject:1`, '--artifact-type', 'application/vnd.example.a', '--file', join(dir, 'a.txt'), '--json'], {
      env: env(dir),
    }),
  );
  const second = json(
    await runCli(['attach', `${reg.host}/rel/subject:1`, '--artifact-type', 'application/vnd.example.b', '--file', join(dir, 'a.txt'), '--json'], {
      env: env(dir),
    }),
  );
  const del = await fetch(`${reg.url}/v2/rel/subject/manifests/${first.digest}`, { method: 'DELETE' });
  assert.equal(del.status, 202);

  const third = json(
    await runCli(['attach', `${reg.host}/rel/subject:1`, '--artifact-type', 'application/vnd.example.c', '--file', join(dir, 'b.txt'), '--json'], {
      env: env(dir),
    }),
  );
  const index = await getIndex(reg.url, referrersTag(subject));
  assert.deepEqual(index.body.manifests.map((m: any) => m.digest).sort(), [second.digest, third.digest].sort());
});

test('the referrers fallback tag follows the spec: algorithm cut to 32 characters, encoded digest to 64', () => {
  assert.equal(referrersTag(`sha256:${'a'.repeat(64)}`), `sha256-${'a'.repeat(64)}`);
  assert.equal(referrersTag(`sha512:${'b'.repeat(128)}`), `sha512-${'b'.repeat(64)}`);
});
