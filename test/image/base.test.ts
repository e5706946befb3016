import assert from 'node:assert/strict';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { makeTree, setAllMtimes, snapshot } from './helpers.js';

const EPOCH = '1500000000';

async function buildJson(args: string[]): Promise<Record<string, any>> {
  const r = await runCli(['image', 'build', ...args, '--source-date-epoch', EPOCH, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('building on a base image: layers reused by digest (mounted), config inherited and overridden, a layer the base has is skipped', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await makeTree(tree, 1_600_000_000);
  const extra = join(dir, 'extra');
  await mkdir(join(extra, 'srv'), { recursive: true });
  await writeFile(join(extra, 'srv', 'index.html'), '<h1>app</h1>\n');
  await setAllMtimes(extra, 1_600_000_000);
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());

  const base = await buildJson([
    '--rootfs',
    tree,
    '--entrypoint',
    '["/usr/bin/tool"]',
    '--cmd',
    '["--help"]',
    '--env',
    'PATH=/usr/bin',
    '--env',
    'A=1',
    '--workdir',
    '/srv',
    '--user',
    '1000:1000',
    '--expose',
    '80',
    '--volume',
    '/data',
    '--label',
    'base=yes',
    '--label',
    'keep=1',
    '--stop-signal',
    'SIGINT',
    '--platform',
    'linux/arm64/v8',
    '--push',
    `${reg.host}/base/img:v1`,
  ]);
  const app = await buildJson([
    '--base',
    `${reg.host}/base/img:v1`,
    '--layer',
    extra,
    '--layer',
    tree,
    '--env',
    'A=2',
    '--env',
    'B=3',
    '--label',
    'base=no',
    '--cmd',
    'serve --port 80',
    '--expose',
    '443/tcp',
    '--annotation',
    'org.example=1',
    '--push',
    `${reg.host}/app/img:v1`,
  ]);
  assert.deepEqual(app.skipped, [tree], 'the base already has the tree layer');
  assert.equal(app.layers.length, 2);
  assert.equal(app.layers[0].digest, base.layers[0].digest);
  assert.equal(app.layers[0].source, 'base');
  assert.equal(app.base.digest, base.digest);
  assert.deepEqual(
    app.base.blobs.map((b: { status: string }) => b.status),
    ['mounted'],
  );

  const manifest = JSON.parse((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/app/img:v1`])).stdout);
  assert.equal(manifest.annotations['org.opencontainers.image.base.digest'], base.digest);
  assert.equal(manifest.annotations['org.opencontainers.image.base.name'], `${reg.host}/base/img:v1`);
  assert.equal(manifest.annotations['org.example'], '1');
  const config = JSON.parse((await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/app/img:v1`])).stdout);
  assert.equal(config.architecture, 'arm64');
  assert.equal(config.variant, 'v8', 'the platform is inherited from the base');
  assert.deepEqual(config.config, {
    User: '1000:1000',
    ExposedPorts: { '443/tcp': {}, '80/tcp': {} },
    Env: ['PATH=/usr/bin', 'A=2', 'B=3'],
    Entrypoint: ['/usr/bin/tool'],
    Cmd: ['/bin/sh', '-c', 'serve --port 80'],
    Volumes: { '/data': {} },
    WorkingDir: '/srv',
    Labels: { base: 'no', keep: '1' },
    StopSignal: 'SIGINT',
  });
  assert.deepEqual(config.rootfs.diff_ids, [base.layers[0].diffID, app.layers[1].diffID]);
  assert.equal(config.history.length, 2);

  // A new entrypoint drops the inherited cmd; an oci-archive base works too, and its blobs land in the layout.
  const copied = await runCli(['copy', `${reg.host}/base/img:v1`, `oci-archive:${join(dir, 'base.tar')}:v1`]);
  assert.equal(copied.code, 0, copied.stderr);
  const local = await buildJson([
    '--base',
    `oci-archive:${join(dir, 'base.tar')}:v1`,
    '--entrypoint',
    '/bin/other',
    '--output',
    `oci:${join(dir, 'local')}:v2`,
  ]);
  assert.equal(local.layers.length, 1);
  await access(join(dir, 'local', 'blobs', 'sha256', base.layers[0].digest.slice(7)));
  const localConfig = JSON.parse(await readFile(join(dir, 'local', 'blobs', 'sha256', local.config.digest.slice(7)), 'utf8'));
  assert.deepEqual(localConfig.config.Entrypoint, ['/bin/sh', '-c', '/bin/other']);
  assert.equal(localConfig.config.Cmd, undefined);
  const wrongPlatform = await runCli([
    'image',
    'build',
    '--base',
    `oci-archive:${join(dir, 'base.tar')}:v1`,
    '--platform',
    'linux/amd64',
    '--output',
    `oci:${join(dir, 'x')}`,
  ]);
  assert.equal(wrongPlatform.code, 2, wrongPlatform.stderr);
  assert.match(wrongPlatform.stderr, /is an image for linux\/arm64\/v8, not linux\/amd64/);

  // A Docker schema 2 base: its layers keep their bytes and digests and get OCI media types.
  await skopeo([
    'copy',
    '--format',
    'v2s2',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    `docker://${reg.host}/base/img:v1`,
    `docker://${reg.host}/docker/base:v1`,
  ]);
  const docker = JSON.parse((await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/docker/base:v1`])).stdout);
  assert.equal(docker.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  const fromDocker = await buildJson(['--base', `${reg.host}/docker/base:v1`, '--layer', extra, '--output', `oci:${join(dir, 'from-docker')}:v1`]);
  const fdManifest = JSON.parse(await readFile(join(dir, 'from-docker', 'blobs', 'sha256', fromDocker.digest.slice(7)), 'utf8'));
  assert.equal(fdManifest.layers[0].digest, base.layers[0].digest);
  assert.equal(fdManifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const fdConfig = JSON.parse(await readFile(join(dir, 'from-docker', 'blobs', 'sha256', fromDocker.config.digest.slice(7)), 'utf8'));
  assert.deepEqual(fdConfig.config.Entrypoint, ['/usr/bin/tool']);
  assert.equal(fdConfig.config.StopSignal, 'SIGINT');

  // The app unpacks to the union of both trees.
  const un = await runCli(['image', 'unpack', `${reg.host}/app/img:v1`, join(dir, 'unpacked')]);
  assert.equal(un.code, 0, un.stderr);
  const got = await snapshot(join(dir, 'unpacked'));
  const want = { ...(await snapshot(tree)), ...(await snapshot(extra)) };
  assert.deepEqual(got, want);
});
