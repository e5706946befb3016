import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { openArchiveForReading } from '../../src/ocilayout/archive.js';
import { multiArchIndex, writeLayout } from '../copy/fixtures.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { buildImage, KiB, sha256 } from './image-helpers.js';

test('copy: registry -> layout -> registry keeps every digest; a multi-arch index copies completely; same-registry copies mount', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);

  // An OS image: layout -> registry -> layout -> another repository.
  const img = await buildImage(root, { size: 300 * KiB });
  assert.equal((await runCli(['copy', img.location, `${reg.host}/os/a:v1`])).code, 0);
  const down = await runCli(['copy', `${reg.host}/os/a:v1`, `oci:${join(root, 'down')}:v1`, '--json']);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(JSON.parse(down.stdout).digest, img.digest);
  const up = await runCli(['copy', `oci:${join(root, 'down')}:v1`, `${reg.host}/os/b:v2`, '--json']);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(JSON.parse(up.stdout).digest, img.digest);
  const rawA = (await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/os/a:v1`])).stdout;
  const rawB = (await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/os/b:v2`])).stdout;
  assert.equal(rawB, rawA);
  assert.equal(sha256(Buffer.from(rawB)), img.digest);
  // The layout in between lists the OS image as the format's builder does.
  const index = JSON.parse(await readFile(join(root, 'down', 'index.json'), 'utf8'));
  assert.equal(index.manifests[0].artifactType, 'application/vnd.monogon.os.image.config.v1+json');

  // A multi-arch index: every platform, every blob.
  const multi = await multiArchIndex(['amd64', 'arm64'], { layerSize: 60_000 });
  await writeLayout(join(root, 'multi'), multi.index, [...multi.blobs, ...multi.manifests], 'v1');
  const pushed = await runCli(['copy', `oci:${join(root, 'multi')}:v1`, `${reg.host}/multi/app:v1`, '--json', '--jobs', '2']);
  assert.equal(pushed.code, 0, pushed.stderr);
  const pj = JSON.parse(pushed.stdout);
  assert.equal(pj.digest, multi.index.desc.digest);
  assert.equal(pj.contents.length, 9);
  const back = await runCli(['copy', `${reg.host}/multi/app:v1`, `oci-archive:${join(root, 'multi.tar')}:v1`]);
  assert.equal(back.code, 0, back.stderr);
  const unpacked = await openArchiveForReading(join(root, 'multi.tar'));
  const want = [multi.index, ...multi.manifests, ...multi.blobs].map((b) => b.desc.digest.slice(7)).sort();
  assert.deepEqual((await readdir(join(unpacked.layout.dir, 'blobs', 'sha256'))).sort(), want);
  for (const b of [multi.index, ...multi.manifests, ...multi.blobs]) {
    assert.ok((await readFile(unpacked.layout.blobPath(b.desc.digest))).equals(b.bytes), `${b.desc.digest} identical`);
  }
  await unpacked.close();
  const platform = await skopeo(['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${reg.host}/multi/app:v1`]);
  assert.equal(JSON.parse(platform.stdout).Architecture, 'arm64');

  // Same registry, another repository: blobs are mounted, not sent again.
  const mounted = await runCli(['copy', `${reg.host}/multi/app:v1`, `${reg.host}/mirror/app:v1`, '--json']);
  assert.equal(mounted.code, 0, mounted.stderr);
  const mj = JSON.parse(mounted.stdout);
  assert.deepEqual(mj.blobs, { uploaded: 0, exists: 0, mounted: 6 });
  assert.equal(mj.bytesTransferred, 0);
  assert.deepEqual(
    mj.contents.filter((c: { kind: string }) => c.kind === 'manifest').map((c: { status: string }) => c.status),
    ['uploaded', 'uploaded', 'uploaded'],
  );
});

test('copy refuses a destination digest that is not the source, and bad locations', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 10 * KiB });
  const wrong = await runCli(['copy', img.location, `127.0.0.1:1/x/y@sha256:${'0'.repeat(64)}`]);
  assert.equal(wrong.code, 5, wrong.stderr);
  assert.match(wrong.stderr, /destination names sha256:0{64}, but the source is sha256:/);
  const bad = await runCli(['copy', img.location, 'docker://127.0.0.1:1/x']);
  assert.equal(bad.code, 2, bad.stderr);
  const missing = await runCli(['copy', `oci:${join(root, 'img')}:nope`, `oci:${join(root, 'x')}`]);
  assert.equal(missing.code, 4, missing.stderr);
  assert.match(missing.stderr, /no image "nope" in layout/);
});
