import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { multiArchIndex, writeLayout } from '../copy/fixtures.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { buildImage, KiB, sha256 } from './image-helpers.js';

test('pull from the real registry an image skopeo pushed (Docker manifest list + schema 2) and an OS image oci-os pushed; both verify', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);

  // A two-platform image converted by skopeo to a Docker manifest list of Docker schema 2 manifests.
  const multi = await multiArchIndex(['amd64', 'arm64'], { layerSize: 150_000 });
  await writeLayout(join(root, 'c'), multi.index, [...multi.blobs, ...multi.manifests], 'v1');
  await skopeo(['copy', '--all', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${join(root, 'c')}:v1`, `docker://${reg.host}/skopeo/app:v1`]);
  const raw = Buffer.from((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/skopeo/app:v1`])).stdout);
  const list = JSON.parse(raw.toString());
  assert.equal(list.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.deepEqual(
    list.manifests.map((m: { mediaType: string }) => m.mediaType),
    Array(2).fill('application/vnd.docker.distribution.manifest.v2+json'),
  );

  const p = await runCli(['pull', `${reg.host}/skopeo/app:v1`, '--output', `oci:${join(root, 'pulled')}`, '--json']);
  assert.equal(p.code, 0, p.stderr);
  const out = JSON.parse(p.stdout);
  assert.equal(out.digest, sha256(raw));
  assert.equal(out.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.equal(out.destination, `oci:${join(root, 'pulled')}:v1`, 'the tag comes from the reference');
  assert.deepEqual(out.blobs, { uploaded: 6, exists: 0, mounted: 0 });
  assert.ok((await readFile(join(root, 'pulled', 'blobs', 'sha256', out.digest.slice(7)))).equals(raw));
  for (const m of list.manifests) {
    const child = await readFile(join(root, 'pulled', 'blobs', 'sha256', m.digest.slice(7)));
    assert.equal(JSON.parse(child.toString()).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  }
  const v = await runCli(['verify', `oci:${join(root, 'pulled')}:v1`]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /ok — 3 manifest\(s\), 6 blob\(s\)/);

  // The OS image goes up through oci-os's own registry push path (copy from a layout).
  const img = await buildImage(join(root), { size: 800 * KiB });
  const up = await runCli(['copy', img.location, `${reg.host}/os/image:1.0`]);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(up.stdout.trim(), img.digest);
  const skopeoSees = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/os/image:1.0`]);
  assert.equal(sha256(Buffer.from(skopeoSees.stdout)), img.digest);

  const archive = join(root, 'os.tar');
  const pulled = await runCli(['pull', `${reg.host}/os/image:1.0`, '-o', `oci-archive:${archive}`, '--json', '--verify-chunks']);
  assert.equal(pulled.code, 0, pulled.stderr);
  const po = JSON.parse(pulled.stdout);
  assert.equal(po.digest, img.digest);
  assert.deepEqual(
    po.verifiedPayloads.map((x: { name: string; chunks: number }) => [x.name, x.chunks]),
    [
      ['system', 13],
      ['kernel.efi', 1],
    ],
  );
  const v2 = await runCli(['verify', `oci-archive:${archive}:1.0`]);
  assert.equal(v2.code, 0, v2.stderr);
  assert.match(v2.stdout, /2 payload\(s\) with 14 chunk\(s\) verified/);

  // By digest, and a reference that is not there.
  const byDigest = await runCli(['pull', `${reg.host}/os/image@${img.digest}`, '-o', `oci:${join(root, 'bydigest')}:x`]);
  assert.equal(byDigest.code, 0, byDigest.stderr);
  const none = await runCli(['pull', `${reg.host}/os/image:nope`, '-o', `oci:${join(root, 'none')}`]);
  assert.equal(none.code, 4);
  assert.match(none.stderr, /not found/);
});

test('pull resumes a blob download the connection cut mid-way, with a Range request, and nothing unverified lands', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);
  const img = await buildImage(root, { compression: 'none', size: 3 * 1024 * KiB });
  const system = img.payloads.find((x) => x.name === 'system')!;
  const up = await runCli(['copy', img.location, `${reg.host}/resume/os:v1`]);
  assert.equal(up.code, 0, up.stderr);

  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const ranges: string[] = [];
  proxy.onRequest = (r) => {
    if (r.headers.range) ranges.push(`${r.method} ${r.path} ${String(r.headers.range)}`);
    return undefined;
  };
  const blobPath = new RegExp(`/blobs/${system.digest}$`);
  proxy.addRule({ method: 'GET', path: blobPath, nth: 1, action: { type: 'resetResponse', afterBytes: 1024 * KiB } });

  const p = await runCli(['pull', `${proxy.host}/resume/os:v1`, '-o', `oci:${join(root, 'pulled')}`, '--json']);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(JSON.parse(p.stdout).digest, img.digest);
  // The root manifest is fetched as the tag is resolved, and kept: one request, no HEAD before it.
  const manifestRequests = proxy.log.filter((e) => e.path.includes('/manifests/')).map((e) => `${e.method} ${e.path}`);
  assert.deepEqual(manifestRequests, ['GET /v2/resume/os/manifests/v1']);
  const gets = proxy.log.filter((e) => e.method === 'GET' && blobPath.test(e.path));
  assert.equal(gets.length, 2, JSON.stringify(gets));
  assert.equal(gets[0]!.fault, 'resetResponse');
  assert.equal(gets[1]!.status, 206, 'the second request was answered with a partial body');
  assert.equal(ranges.length, 1, ranges.join('\n'));
  const m = /^GET \S+ bytes=(\d+)-$/.exec(ranges[0]!);
  assert.ok(m, ranges[0]);
  assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 1024 * KiB, `resumed from ${m[1]}`);
  const pulledBlob = await readFile(join(root, 'pulled', 'blobs', 'sha256', system.digest.slice(7)));
  assert.ok(pulledBlob.equals(img.data.system!));

  // Every attempt cut before it gains a byte: the pull fails, and the layout gets no index.json
  // (nothing visible). Cuts that each move the download on are resumed for as long as they do.
  proxy.clearRules();
  proxy.addRule({ method: 'GET', path: blobPath, times: Infinity, action: { type: 'resetResponse', afterBytes: 0 } });
  const failed = await runCli(['pull', `${proxy.host}/resume/os:v1`, '-o', `oci:${join(root, 'failed')}`, '--retries', '1']);
  assert.equal(failed.code, 6, failed.stderr);
  assert.match(failed.stderr, new RegExp(`${system.digest}: download broke off after \\d+ bytes`));
  assert.equal(proxy.log.filter((e) => e.method === 'GET' && blobPath.test(e.path)).length, 4, 'one resume with --retries 1');
  await assert.rejects(readFile(join(root, 'failed', 'index.json')), /ENOENT/);
});
