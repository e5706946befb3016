import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';

test('image index between local locations: an archive skopeo reads completely; one image per platform', async (t) => {
  if (!requireTools(t, 'skopeo')) return;
  const dir = await tempDir(t);
  await mkdir(join(dir, 'tree'));
  await writeFile(join(dir, 'tree', 'hello'), 'hello\n');
  const layout = `oci:${join(dir, 'images')}`;
  const builds = await Promise.all(
    [
      ['linux/amd64', 'amd64', 'a'],
      ['linux/arm64/v8', 'arm64', 'b'],
      ['linux/amd64', 'amd64-other', 'c'],
    ].map(([platform, tag, label]) =>
      runCli([
        'image',
        'build',
        '--rootfs',
        join(dir, 'tree'),
        '--platform',
        platform!,
        '--label',
        `v=${label}`,
        '--output',
        `oci-archive:${join(dir, `${tag}.tar`)}:${tag}`,
      ]),
    ),
  );
  for (const b of builds) assert.equal(b.code, 0, b.stderr);

  const r = await runCli([
    'image',
    'index',
    '--output',
    `oci-archive:${join(dir, 'multi.tar')}:v1`,
    `oci-archive:${join(dir, 'amd64.tar')}:amd64`,
    `oci-archive:${join(dir, 'arm64.tar')}:arm64`,
    '--annotation',
    'org.opencontainers.image.version=1',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.output, `oci-archive:${join(dir, 'multi.tar')}:v1`);
  const raw = JSON.parse((await skopeo(['inspect', '--raw', `oci-archive:${join(dir, 'multi.tar')}:v1`])).stdout);
  assert.equal(raw.annotations['org.opencontainers.image.version'], '1');
  assert.deepEqual(
    raw.manifests.map((m: { platform: object }) => m.platform),
    [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ],
  );
  // skopeo copies every image with its blobs out of the archive: nothing is missing.
  await skopeo(['copy', '--all', `oci-archive:${join(dir, 'multi.tar')}:v1`, `${layout}:all`]);
  const arm = JSON.parse((await skopeo(['inspect', '--override-arch', 'arm64', '--override-variant', 'v8', `${layout}:all`])).stdout);
  assert.equal(arm.Labels.v, 'b');

  const dup = await runCli([
    'image',
    'index',
    '--output',
    `oci:${join(dir, 'dup')}`,
    `oci-archive:${join(dir, 'amd64.tar')}:amd64`,
    `oci-archive:${join(dir, 'amd64-other.tar')}:amd64-other`,
  ]);
  assert.equal(dup.code, 2, dup.stderr);
  assert.match(
    dup.stderr,
    /amd64-other\.tar:amd64-other and oci-archive:.*amd64\.tar:amd64 are both images for linux\/amd64; an index holds one image per platform/,
  );
  const un = await runCli(['image', 'unpack', `oci-archive:${join(dir, 'multi.tar')}:v1`, join(dir, 'un'), '--platform', 'linux/arm64', '--json']);
  assert.equal(un.code, 0, un.stderr);
  assert.deepEqual(JSON.parse(un.stdout).platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
});
