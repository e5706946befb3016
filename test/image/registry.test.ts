import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { isRoot, makeTree, snapshot } from './helpers.js';

test('a tree pushed to the real registry comes back identical through skopeo + umoci and through image unpack', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'umoci')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await makeTree(tree, 1_600_000_000);
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const ref = `${reg.host}/oci-os/tree:v1`;

  const r = await runCli(['image', 'build', '--rootfs', tree, '--push', ref, '--entrypoint', '["/usr/bin/tool"]', '--env', 'A=1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.reference, ref);
  assert.equal(out.layers.length, 1);
  assert.equal(out.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');

  // skopeo pulls exactly what we pushed.
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  const manifest = JSON.parse(raw.stdout);
  assert.equal(`sha256:${(await import('node:crypto')).createHash('sha256').update(raw.stdout).digest('hex')}`, out.digest);
  assert.equal(manifest.layers[0].digest, out.layers[0].digest);
  const layout = join(dir, 'layout');
  await skopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:v1`]);
  const config = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8'));
  assert.deepEqual(config.rootfs.diff_ids, [out.layers[0].diffID]);
  assert.deepEqual(config.config.Entrypoint, ['/usr/bin/tool']);
  assert.equal(config.created, undefined, 'no epoch, no created time');

  const want = await snapshot(tree, { mtimes: true, owners: isRoot });
  const bundle = join(dir, 'bundle');
  const u = spawnSync('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${layout}:v1`, bundle], { encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  assert.deepEqual(await snapshot(join(bundle, 'rootfs'), { mtimes: true, owners: isRoot }), want, 'umoci unpacks the input tree');

  const mine = join(dir, 'unpacked');
  const un = await runCli(['image', 'unpack', ref, mine]);
  assert.equal(un.code, 0, un.stderr);
  assert.equal(un.stdout.trim(), out.digest);
  assert.deepEqual(await snapshot(mine, { mtimes: true, owners: isRoot }), want, 'image unpack gives the input tree');
  const tool = (await snapshot(mine))['usr/bin/tool']!;
  assert.deepEqual(tool.links, ['usr/bin/tool', 'usr/bin/tool-hardlink']);
});

test('image index pushes a two-platform index; unpack picks the platform; an OS image artifact is refused as a base', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await makeTree(tree, 1_600_000_000);
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  for (const [arch, extra] of [
    ['amd64', 'x86'],
    ['arm64', 'arm'],
  ] as const) {
    const r = await runCli([
      'image',
      'build',
      '--rootfs',
      tree,
      '--platform',
      `linux/${arch}`,
      '--label',
      `arch=${extra}`,
      '--push',
      `${reg.host}/multi/app:${arch}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
  }
  const idx = await runCli(['image', 'index', '--push', `${reg.host}/multi/app:v1`, `${reg.host}/multi/app:amd64`, `${reg.host}/multi/app:arm64`, '--json']);
  assert.equal(idx.code, 0, idx.stderr);
  const report = JSON.parse(idx.stdout);
  assert.deepEqual(
    report.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
    ['amd64', 'arm64'],
  );
  const raw = JSON.parse((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/multi/app:v1`])).stdout);
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(
    raw.manifests.map((m: { platform: object }) => m.platform),
    [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ],
  );
  const arm = await skopeo(['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${reg.host}/multi/app:v1`]);
  assert.equal(JSON.parse(arm.stdout).Labels.arch, 'arm');

  const un = await runCli(['image', 'unpack', `${reg.host}/multi/app:v1`, join(dir, 'arm'), '--platform', 'linux/arm64', '--json']);
  assert.equal(un.code, 0, un.stderr);
  assert.equal(JSON.parse(un.stdout).digest, report.manifests[1].digest);
  const missing = await runCli(['image', 'unpack', `${reg.host}/multi/app:v1`, join(dir, 's390x'), '--platform', 'linux/s390x']);
  assert.equal(missing.code, 4, missing.stderr);
  assert.match(missing.stderr, /no image for linux\/s390x \(it has: linux\/amd64, linux\/arm64\)/);

  const osimage = await runCli(['build', '-p', `system=${join(tree, 'usr', 'bin', 'data.bin')}`, '-o', `oci:${join(dir, 'os')}:v1`]);
  assert.equal(osimage.code, 0, osimage.stderr);
  const refused = await runCli(['image', 'build', '--base', `oci:${join(dir, 'os')}:v1`, '--layer', tree, '--output', `oci:${join(dir, 'x')}`]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /is not a container image \(it is an artifact of type application\/vnd\.monogon\.os\.image\.v1\)/);
  assert.equal(refused.stderr.trim().split('\n').length, 1);
});
