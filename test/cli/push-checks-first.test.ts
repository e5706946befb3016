/**
 * push against the built-in registry, in this process with a request log:
 * tags and --digest-file are checked before a request is sent, --chunk-size
 * below 1 KiB is a usage error, and --json lists every blob of the image
 * (the config too, when it was already there) in manifest order.
 */

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type RequestLogEntry, startRegistryServer } from '../../src/server/index.js';
import { type CliResult, pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

interface Setup {
  dir: string;
  host: string;
  url: string;
  log: RequestLogEntry[];
  payloads: string[];
  cli(args: string[]): Promise<CliResult>;
}

async function setup(t: TestContext): Promise<Setup> {
  const dir = await tempDir(t);
  const log: RequestLogEntry[] = [];
  const reg = await startRegistryServer({ root: join(dir, 'registry'), host: '127.0.0.1', port: 0, log: (e) => log.push(e) });
  t.after(() => reg.close());
  await writeFile(join(dir, 'system.img'), pseudoRandom(300_000, 3));
  await writeFile(join(dir, 'kernel.efi'), pseudoRandom(5_000, 4));
  return {
    dir,
    host: reg.address,
    url: reg.url,
    log,
    payloads: ['-p', `system=${join(dir, 'system.img')}`, '-p', `kernel.efi=${join(dir, 'kernel.efi')}`],
    cli: (args) => runCli(args, { env: { OCI_OS_CACHE_DIR: join(dir, 'cache'), DOCKER_CONFIG: join(dir, 'docker') } }),
  };
}

async function manifestOf(s: Setup, repo: string, digest: string): Promise<{ config: { digest: string }; layers: Array<{ digest: string }> }> {
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  return (await res.json()) as { config: { digest: string }; layers: Array<{ digest: string }> };
}

test('push refuses a bad --tag before any request: nothing uploaded, nothing half tagged', async (t) => {
  const s = await setup(t);
  for (const bad of ['bad tag', 'x/y', '.hidden', 'a'.repeat(129)]) {
    const r = await s.cli(['push', `${s.host}/os/t:good`, ...s.payloads, '--tag', 'fine', '--tag', bad]);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`invalid --tag "${bad}"`), r.stderr);
  }
  const lay = join(s.dir, 'lay');
  const built = await s.cli(['build', ...s.payloads, '-o', `oci:${lay}:v1`, '-q']);
  assert.equal(built.code, 0, built.stderr);
  const from = await s.cli(['push', `${s.host}/os/t:good`, '--from', `oci:${lay}:v1`, '--tag', 'bad tag', '--json']);
  assert.equal(from.code, 2, from.stderr);
  assert.equal(JSON.parse(from.stdout).error.code, 'USAGE');
  assert.match(JSON.parse(from.stdout).error.message, /"bad tag"/);
  assert.deepEqual(s.log, [], 'the registry saw no request');
});

test('push --json lists every blob once, config first, then the layers in manifest order; a re-push keeps the config', async (t) => {
  const s = await setup(t);
  const check = async (r: CliResult, repo: string, statuses: string[]): Promise<void> => {
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const m = await manifestOf(s, repo, out.digest);
    assert.deepEqual(
      out.blobs.map((b: { digest: string }) => b.digest),
      [m.config.digest, ...m.layers.map((l) => l.digest)],
    );
    assert.deepEqual(
      out.blobs.map((b: { status: string }) => b.status),
      statuses,
      JSON.stringify(out.blobs),
    );
    assert.equal(out.blobs[0].mediaType, 'application/vnd.monogon.os.image.config.v1+json');
  };
  const first = await s.cli(['push', `${s.host}/os/b:1`, ...s.payloads, '--json', '-q']);
  await check(first, 'os/b', ['uploaded', 'uploaded', 'uploaded']);
  // Cached payloads confirmed by hashing, config found by HEAD: all three are there.
  const again = await s.cli(['push', `${s.host}/os/b:1`, ...s.payloads, '--json', '-q']);
  await check(again, 'os/b', ['exists', 'exists', 'exists']);
  const uncached = await s.cli(['push', `${s.host}/os/b:2`, ...s.payloads, '--json', '-q', '--no-cache']);
  await check(uncached, 'os/b', ['exists', 'uploaded', 'uploaded']);

  const lay = join(s.dir, 'lay');
  const built = await s.cli(['build', ...s.payloads, '-o', `oci:${lay}:v1`, '-q']);
  assert.equal(built.code, 0, built.stderr);
  await check(await s.cli(['push', `${s.host}/os/from:1`, '--from', `oci:${lay}:v1`, '--json', '-q']), 'os/from', ['uploaded', 'uploaded', 'uploaded']);
  await check(await s.cli(['push', `${s.host}/os/from:1`, '--from', `oci:${lay}:v1`, '--json', '-q']), 'os/from', ['exists', 'exists', 'exists']);
});

test('--chunk-size below 1KiB is a usage error before any request', async (t) => {
  const s = await setup(t);
  for (const size of ['0', '1', '1023']) {
    const r = await s.cli(['push', `${s.host}/os/c:1`, ...s.payloads, '--chunk-size', size]);
    assert.equal(r.code, 2, `${size}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`invalid --chunk-size "${size}": use at least 1KiB`));
  }
  assert.deepEqual(s.log, []);
  const ok = await s.cli(['push', `${s.host}/os/c:1`, ...s.payloads, '--chunk-size', '1KiB', '--no-cache', '-q']);
  assert.equal(ok.code, 0, ok.stderr);
});

test('an unwritable --digest-file fails before any request, so nothing is published', async (t) => {
  const s = await setup(t);
  await mkdir(join(s.dir, 'adir'));
  const cases = [
    { file: join(s.dir, 'missing', 'digest.txt'), reason: /no such file or directory/ },
    { file: join(s.dir, 'adir'), reason: /is a directory/ },
    { file: join(s.dir, 'system.img', 'digest.txt'), reason: /not a directory/ },
  ];
  for (const c of cases) {
    const r = await s.cli(['push', `${s.host}/os/d:1`, ...s.payloads, '--digest-file', c.file, '--json']);
    assert.equal(r.code, 1, r.stdout);
    const err = JSON.parse(r.stdout).error;
    assert.equal(err.code, 'OUTPUT_UNWRITABLE');
    assert.ok(err.message.startsWith(`cannot write ${c.file}: `), err.message);
    assert.match(err.message, c.reason);
  }
  assert.deepEqual(s.log, [], 'the registry saw no request');
  const ok = await s.cli(['push', `${s.host}/os/d:1`, ...s.payloads, '--digest-file', join(s.dir, 'digest.txt'), '-q']);
  assert.equal(ok.code, 0, ok.stderr);
});
