import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { containerImage, multiArchIndex, writeLayout } from '../copy/fixtures.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { tempRegistry } from '../server/helpers.js';
import { blobPath, buildImage, KiB, runCliBinary } from './image-helpers.js';

test('inspect summarizes an OS image (text, --json, --raw), also from a registry', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 200 * KiB + 1 });
  const j = await runCli(['inspect', img.location, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.manifest.artifactType, 'application/vnd.monogon.os.image.v1');
  assert.equal(out.config.format_version, '1');
  assert.equal(out.summary.kind, 'os-image');
  assert.equal(out.summary.digest, img.digest);
  assert.equal(out.summary.productInfo.id, 'testos');
  const system = img.payloads[0]!;
  assert.deepEqual(out.summary.payloads[0], {
    name: 'system',
    size: 200 * KiB + 1,
    storedSize: system.blobSize,
    compression: 'zstd',
    chunkCount: 4,
    hashChunkSize: 64 * KiB,
    digest: system.digest,
  });

  const text = await runCli(['inspect', img.location]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^Kind: +os-image$/m);
  assert.match(text.stdout, /^Product id: +testos$/m);
  assert.match(text.stdout, /^PAYLOAD +SIZE +STORED +COMPRESSION +CHUNKS$/m);
  assert.match(text.stdout, /^system +200\.0 KiB +\S+ KiB +zstd +4$/m);
  assert.match(text.stdout, /^kernel\.efi +2\.54 KiB +\d+ B +zstd +1$/m);

  const raw = await runCliBinary(['inspect', img.location, '--raw']);
  assert.equal(raw.code, 0, raw.stderr);
  assert.ok(raw.stdout.equals(await readFile(blobPath(img.dir, img.digest))), 'the manifest bytes exactly');

  const reg = await tempRegistry();
  t.after(() => reg.stop());
  assert.equal((await runCli(['copy', img.location, `${reg.address}/os/img:v1`])).code, 0);
  const remote = await runCli(['inspect', `${reg.address}/os/img:v1`, '--json']);
  assert.equal(remote.code, 0, remote.stderr);
  assert.deepEqual(JSON.parse(remote.stdout).summary.payloads, out.summary.payloads);
  assert.equal(JSON.parse(remote.stdout).summary.reference, `${reg.address}/os/img:v1`);
});

test('inspect shows platform, config and layers of a container image, and the platforms of an index', async (t) => {
  const root = await tempDir(t);
  const image = await containerImage('arm64', { layers: 2 });
  await writeLayout(join(root, 'c'), image.manifest, image.blobs, 'v1');
  const j = await runCli(['inspect', `oci:${join(root, 'c')}:v1`, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const s = JSON.parse(j.stdout).summary;
  assert.equal(s.kind, 'image');
  assert.deepEqual(s.platform, { os: 'linux', architecture: 'arm64' });
  assert.equal(s.config.digest, image.blobs[0]!.desc.digest);
  assert.deepEqual(
    s.layers.map((l: { digest: string }) => l.digest),
    [image.blobs[1]!.desc.digest, image.blobs[2]!.desc.digest],
  );
  const text = await runCli(['inspect', `oci:${join(root, 'c')}:v1`]);
  assert.match(text.stdout, /^Platform: +linux\/arm64$/m);
  assert.match(text.stdout, /^LAYER +SIZE +MEDIA TYPE$/m);

  const multi = await multiArchIndex(['amd64', 's390x'], { layerSize: 1000 });
  await writeLayout(join(root, 'm'), multi.index, [...multi.blobs, ...multi.manifests], 'v1');
  const m = await runCli(['inspect', `oci:${join(root, 'm')}:v1`]);
  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, /^Kind: +index$/m);
  assert.match(m.stdout, new RegExp(`^${multi.manifests[1]!.desc.digest} +linux/s390x`, 'm'));
});
