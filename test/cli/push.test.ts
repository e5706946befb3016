import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliResult, pseudoRandom, repoRoot, runCli, tempDir } from '../helpers/cli.js';
import { type RegistryHandle, startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { checkOsImageLayout } from '../helpers/osimage-check.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { sha256 } from './image-helpers.js';

const MiB = 1 << 20;

interface Payloads {
  dir: string;
  list: Array<{ name: string; data: Buffer; path: string }>;
}

/** Two payloads: a 9 MiB half-random system image (several upload chunks) and a small kernel. */
async function payloads(t: Parameters<typeof tempDir>[0]): Promise<Payloads> {
  const dir = await tempDir(t);
  const system = pseudoRandom(9 * MiB + 4321, 7, true);
  const kernel = await readFile(join(repoRoot, 'fixtures', 'payloads', 'kernel.efi'));
  await writeFile(join(dir, 'system.img'), system);
  await writeFile(join(dir, 'kernel.efi'), kernel);
  return {
    dir,
    list: [
      { name: 'system', data: system, path: join(dir, 'system.img') },
      { name: 'kernel.efi', data: kernel, path: join(dir, 'kernel.efi') },
    ],
  };
}

function push(p: Payloads, ref: string, extra: string[] = [], input?: string): Promise<CliResult> {
  return runCli(['push', ref, ...p.list.flatMap((x) => ['-p', `${x.name}=${x.path}`]), '--chunk-size', '1MiB', '--retries', '3', '--json', ...extra], {
    env: { OCI_OS_CACHE_DIR: join(p.dir, 'cache'), DOCKER_CONFIG: join(p.dir, 'docker') },
    input,
  });
}

/** Pulls with skopeo (an independent client) and checks every payload and chunk hash. */
async function pullAndCheck(
  reg: { host: string; certDir?: string; username?: string; password?: string },
  repoTag: string,
  digest: string,
  p: Payloads,
): Promise<void> {
  const out = join(p.dir, `pulled-${Math.random().toString(36).slice(2)}`);
  const tls = reg.certDir ? ['--src-cert-dir', reg.certDir] : ['--src-tls-verify=false'];
  const creds = reg.username ? ['--src-creds', `${reg.username}:${reg.password}`] : [];
  await skopeo(['copy', ...tls, ...creds, `docker://${reg.host}/${repoTag}`, `oci:${out}:x`]);
  await checkOsImageLayout(out, digest, p.list);
}

async function registry(t: Parameters<typeof tempDir>[0], opts: Parameters<typeof startDockerRegistry>[0] = {}): Promise<RegistryHandle> {
  const reg = await startDockerRegistry(opts);
  t.after(() => reg.stop());
  return reg;
}

test('push to the real registry: skopeo pulls back the exact payloads; a re-push uploads no payload bytes', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'zstd')) return;
  const reg = await registry(t);
  const p = await payloads(t);
  const r = await push(p, `${reg.host}/os/fixture:1.0`, ['--tag', 'stable', '--digest-file', join(p.dir, 'digest.txt')]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.match(out.reference, new RegExp(`^${reg.host}/os/fixture@sha256:[0-9a-f]{64}$`));
  assert.deepEqual(out.tags, ['1.0', 'stable']);
  assert.equal((await readFile(join(p.dir, 'digest.txt'), 'utf8')).trim(), out.digest);
  const uploaded = out.blobs.filter((b: { status: string }) => b.status === 'uploaded');
  assert.equal(uploaded.length, 3, 'two payloads and the config were uploaded');
  await pullAndCheck(reg, 'os/fixture:stable', out.digest, p);
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/os/fixture:1.0`]);
  assert.equal(JSON.parse(raw.stdout).artifactType, 'application/vnd.monogon.os.image.v1');

  const again = await push(p, `${reg.host}/os/fixture:1.0`);
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout);
  assert.equal(second.digest, out.digest, 'same inputs, same manifest');
  const payloadBlobs = second.blobs.filter((b: { mediaType: string }) => b.mediaType === 'application/zstd');
  assert.equal(payloadBlobs.length, 2);
  assert.ok(
    payloadBlobs.every((b: { status: string; uploadedBytes: number }) => b.status === 'exists' && b.uploadedBytes === 0),
    JSON.stringify(second.blobs),
  );
  assert.equal(
    second.blobs.reduce((n: number, b: { uploadedBytes: number }) => n + b.uploadedBytes, 0),
    0,
  );

  // The same content in another file (a reproducible rebuild, a copy, a touch): found by its content.
  const copy = join(p.dir, 'system-rebuilt.img');
  await writeFile(copy, p.list[0]!.data);
  const rebuilt = await runCli(['push', `${reg.host}/os/fixture:1.0`, '-p', `system=${copy}`, '-p', `kernel.efi=${p.list[1]!.path}`, '--json'], {
    env: { OCI_OS_CACHE_DIR: join(p.dir, 'cache'), DOCKER_CONFIG: join(p.dir, 'docker') },
  });
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  const rebuiltOut = JSON.parse(rebuilt.stdout);
  assert.equal(rebuiltOut.digest, out.digest);
  assert.equal(
    rebuiltOut.blobs.reduce((n: number, b: { uploadedBytes: number }) => n + b.uploadedBytes, 0),
    0,
    JSON.stringify(rebuiltOut.blobs),
  );

  // Same file name, different content: the cache must not be fooled by the path.
  const changed = pseudoRandom(9 * MiB + 4321, 8, true);
  await writeFile(p.list[0]!.path, changed);
  p.list[0]!.data = changed;
  const third = await push(p, `${reg.host}/os/fixture:1.1`);
  assert.equal(third.code, 0, third.stderr);
  const thirdOut = JSON.parse(third.stdout);
  assert.notEqual(thirdOut.digest, out.digest);
  await pullAndCheck(reg, 'os/fixture:1.1', thirdOut.digest, p);
});

test('push --from a layout copies it verbatim', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const reg = await registry(t);
  const p = await payloads(t);
  const built = await runCli(['build', ...p.list.flatMap((x) => ['-p', `${x.name}=${x.path}`]), '-o', `oci:${join(p.dir, 'lay')}:v1`]);
  assert.equal(built.code, 0, built.stderr);
  const r = await runCli(['push', `${reg.host}/os/copied:v1`, '--from', `oci:${join(p.dir, 'lay')}:v1`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.digest, built.stdout.trim(), 'digest unchanged');
  await pullAndCheck(reg, 'os/copied:v1', out.digest, p);

  // The manifest goes up once, under its first tag (which stores it by digest too), as skopeo and
  // crane send it: no HEAD for it and no PUT by digest before the tag; a second tag is a PUT of its own.
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const tagged = await runCli(['push', `${proxy.host}/os/tagged:v1`, '--from', `oci:${join(p.dir, 'lay')}:v1`, '--tag', 'stable', '--json']);
  assert.equal(tagged.code, 0, tagged.stderr);
  const manifestRequests = proxy.log.filter((e) => e.path.includes('/manifests/')).map((e) => `${e.method} ${e.path} ${e.status}`);
  assert.deepEqual(manifestRequests, ['PUT /v2/os/tagged/manifests/v1 201', 'PUT /v2/os/tagged/manifests/stable 201']);
  assert.deepEqual(JSON.parse(tagged.stdout).tags, ['v1', 'stable']);
  proxy.clearLog();
  const onePass = await push(p, `${proxy.host}/os/onepass:v1`);
  assert.equal(onePass.code, 0, onePass.stderr);
  assert.deepEqual(
    proxy.log.filter((e) => e.path.includes('/manifests/')).map((e) => `${e.method} ${e.path} ${e.status}`),
    ['PUT /v2/os/onepass/manifests/v1 201'],
  );
  await pullAndCheck(reg, `os/onepass@${JSON.parse(onePass.stdout).digest}`, JSON.parse(onePass.stdout).digest, p);

  // A registry that answers the PUT without Docker-Content-Digest gets the manifest by its digest too
  // (which stores that digest or fails), so the digest the push reports is there either way.
  proxy.clearLog();
  proxy.addRule({ method: 'PUT', path: /\/manifests\//, times: Infinity, action: { type: 'rewrite', removeHeaders: ['docker-content-digest'] } });
  const unsaid = await runCli(['push', `${proxy.host}/os/unsaid:v1`, '--from', `oci:${join(p.dir, 'lay')}:v1`]);
  assert.equal(unsaid.code, 0, unsaid.stderr);
  assert.deepEqual(
    proxy.log.filter((e) => e.path.includes('/manifests/')).map((e) => `${e.method} ${e.path} ${e.status}`),
    ['PUT /v2/os/unsaid/manifests/v1 201', `PUT /v2/os/unsaid/manifests/${out.digest} 201`],
  );
  // One that answers the tag's PUT without the header, then the digest's with another digest, fails the push.
  proxy.clearRules();
  proxy.clearLog();
  proxy.addRule(
    { method: 'PUT', path: /\/manifests\/v1$/, action: { type: 'respond', status: 201 } },
    { method: 'PUT', path: /\/manifests\/sha256:/, action: { type: 'respond', status: 201, headers: { 'docker-content-digest': `sha256:${'0'.repeat(64)}` } } },
  );
  const lost = await runCli(['push', `${proxy.host}/os/lost:v1`, '--from', `oci:${join(p.dir, 'lay')}:v1`]);
  assert.equal(lost.code, 5, lost.stderr);
  assert.match(lost.stderr, new RegExp(`registry stored the manifest as sha256:0{64}, expected ${out.digest}`));
  const byDigest = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/os/tagged@${out.digest}`]);
  assert.equal(sha256(Buffer.from(byDigest.stdout)), out.digest, 'stored by digest as well');
});

test('push with Basic auth, TLS from a test CA, and token auth', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'openssl', 'zstd')) return;
  const p = await payloads(t);
  const basic = await registry(t, { auth: 'htpasswd' });
  const denied = await push(p, `${basic.host}/os/a:1`);
  assert.equal(denied.code, 3, denied.stdout + denied.stderr);
  assert.match(JSON.parse(denied.stdout).error.message, new RegExp(basic.host.replace(/\./g, '\\.')));
  const ok = await push(p, `${basic.host}/os/a:1`, ['-u', basic.username!, '--password-stdin'], `${basic.password}\n`);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!ok.stdout.includes(basic.password!) && !ok.stderr.includes(basic.password!), 'password never printed');
  await pullAndCheck(basic, 'os/a:1', JSON.parse(ok.stdout).digest, p);

  const tls = await registry(t, { tls: true });
  const untrusted = await push(p, `${tls.host}/os/b:1`, ['--no-plain-http']);
  assert.equal(untrusted.code, 6, untrusted.stdout + untrusted.stderr);
  assert.match(untrusted.stdout, /ca-file|insecure/);
  const trusted = await push(p, `${tls.host}/os/b:1`, ['--no-plain-http', '--ca-file', tls.caFile!]);
  assert.equal(trusted.code, 0, trusted.stderr);
  await pullAndCheck(tls, 'os/b:1', JSON.parse(trusted.stdout).digest, p);

  const token = await registry(t, { auth: 'token' });
  const viaToken = await push(p, `${token.host}/os/c:1`, ['-u', token.username!, '--password-stdin'], token.password);
  assert.equal(viaToken.code, 0, viaToken.stderr);
  assert.ok(token.tokenServer!.requests.some((r) => r.scope.some((s) => s.includes('os/c') && s.includes('push'))));
  await pullAndCheck(token, 'os/c:1', JSON.parse(viaToken.stdout).digest, p);
});

test('push survives resets, 503, 429 and an expired token, and ends in a complete image', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'zstd')) return;
  const p = await payloads(t);
  const reg = await registry(t, { auth: 'token' });
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const PATCH = /\/blobs\/uploads\//;
  proxy.addRule(
    { method: 'PATCH', path: PATCH, nth: 2, action: { type: 'reset', afterBytes: 0 } },
    { method: 'PATCH', path: PATCH, nth: 3, action: { type: 'respond', status: 503, headers: { 'retry-after': '1' }, body: 'busy' } },
    { method: 'PATCH', path: PATCH, nth: 4, action: { type: 'unauthorized' } },
    { method: 'HEAD', nth: 1, action: { type: 'respond', status: 429, headers: { 'retry-after': '1' } } },
    { method: 'PATCH', path: PATCH, nth: 6, action: { type: 'reset', afterBytes: 300_000 } },
  );
  const r = await push(p, `${proxy.host}/os/faulty:1`, ['-u', reg.username!, '--password-stdin', '--jobs', '1'], reg.password);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(proxy.fired(), [1, 1, 1, 1, 1], 'every fault happened');
  const out = JSON.parse(r.stdout);
  await pullAndCheck({ ...reg }, 'os/faulty:1', out.digest, p);
});

test('push --from streams chunks from the layout and survives resets, 503 and an expired token mid-blob', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'zstd')) return;
  const p = await payloads(t);
  const reg = await registry(t, { auth: 'token' });
  const built = await runCli(['build', ...p.list.flatMap((x) => ['-p', `${x.name}=${x.path}`]), '--compression', 'none', '-o', `oci:${join(p.dir, 'lay')}:v1`]);
  assert.equal(built.code, 0, built.stderr);
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const PATCH = /\/blobs\/uploads\//;
  proxy.addRule(
    { method: 'PATCH', path: PATCH, nth: 2, action: { type: 'reset', afterBytes: 0 } },
    { method: 'PATCH', path: PATCH, nth: 4, action: { type: 'respond', status: 503, headers: { 'retry-after': '1' }, body: 'busy' } },
    { method: 'PATCH', path: PATCH, nth: 6, action: { type: 'unauthorized' } },
  );
  const r = await runCli(
    [
      'push',
      `${proxy.host}/os/from-faulty:1`,
      '--from',
      `oci:${join(p.dir, 'lay')}:v1`,
      '-u',
      reg.username!,
      '--password-stdin',
      '--chunk-size',
      '1MiB',
      '--jobs',
      '1',
      '--json',
    ],
    {
      env: { DOCKER_CONFIG: join(p.dir, 'docker') },
      input: reg.password,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(proxy.fired(), [1, 1, 1], 'every fault happened');
  const out = JSON.parse(r.stdout);
  assert.equal(out.digest, built.stdout.trim());
  const system = out.blobs.find((b: { size: number }) => b.size === p.list[0]!.data.length);
  assert.ok(
    system.uploadedBytes - system.size <= 3 * MiB,
    `each of the three failures sent at most its own chunk again (${system.uploadedBytes - system.size} bytes)`,
  );
  await pullAndCheck({ ...reg }, 'os/from-faulty:1', out.digest, p);
});

test('push adapts to registry quirks: PATCH refused (whole-blob upload), chunks too large, chunks too small', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'zstd')) return;
  const p = await payloads(t);
  const reg = await registry(t);
  const cases: Array<{ repo: string; rules: Parameters<Awaited<ReturnType<typeof startFaultProxy>>['addRule']> }> = [
    {
      repo: 'gar',
      rules: [
        {
          method: 'PATCH',
          times: Infinity,
          action: { type: 'respond', status: 405, body: { errors: [{ code: 'UNSUPPORTED', message: 'chunked uploads are not supported' }] } },
        },
      ],
    },
    {
      repo: 'ghcr',
      rules: [
        {
          method: 'PATCH',
          times: Infinity,
          when: (i) => (i.contentLength ?? 0) > 512 * 1024,
          action: {
            type: 'respond',
            status: 416,
            body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'exceeds the maximum permissible limit of 0.50MiB' }] },
          },
        },
      ],
    },
  ];
  for (const c of cases) {
    const proxy = await startFaultProxy(reg.url);
    t.after(() => proxy.stop());
    proxy.addRule(...c.rules);
    const r = await push(p, `${proxy.host}/os/${c.repo}:1`);
    assert.equal(r.code, 0, `${c.repo}: ${r.stderr}`);
    await pullAndCheck(reg, `os/${c.repo}:1`, JSON.parse(r.stdout).digest, p);
  }
});

test('push errors: bad reference, unreachable registry, nothing to push', async (t) => {
  const p = await payloads(t);
  const bad = await runCli(['push', 'UPPER/Case:x', '-p', `system=${p.list[0]!.path}`]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^oci-os: error: invalid reference/);
  const refused = await runCli(['push', '127.0.0.1:1/os/x:1', '-p', `system=${p.list[0]!.path}`, '--retries', '0']);
  assert.equal(refused.code, 6, refused.stderr);
  assert.match(refused.stderr, /127\.0\.0\.1:1/);
  const nothing = await runCli(['push', '127.0.0.1:1/os/x:1']);
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /--payload|--from/);
  const mixed = await runCli(['push', '127.0.0.1:1/os/x:1', '--from', `oci:${p.dir}/none:1`, '--git', '--compression', 'none']);
  assert.equal(mixed.code, 2, mixed.stderr);
  assert.match(mixed.stderr, /--compression, --git only apply when building with --payload/);
});

test('Ctrl-C during a push cancels the upload session and tags nothing', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const { spawn } = await import('node:child_process');
  const { cliPath } = await import('../helpers/cli.js');
  const p = await payloads(t);
  const reg = await registry(t);
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  proxy.addRule({ method: 'PATCH', times: Infinity, action: { type: 'delay', ms: 400 } });
  const child = spawn(process.execPath, [cliPath, 'push', `${proxy.host}/os/interrupted:1`, '-p', `system=${p.list[0]!.path}`, '--chunk-size', '1MiB'], {
    env: { ...process.env, OCI_OS_CACHE_DIR: join(p.dir, 'cache') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  for (let i = 0; i < 1200 && !proxy.log.some((e) => e.method === 'PATCH'); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(
    proxy.log.some((e) => e.method === 'PATCH'),
    'the upload started',
  );
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 1, stderr);
  assert.match(stderr, /interrupted/);
  for (let i = 0; i < 40 && !proxy.log.some((e) => e.method === 'DELETE'); i++) await new Promise((r) => setTimeout(r, 25));
  // The chunk on the wire was let finish, so the registry took the DELETE at its newest Location.
  const deleted = proxy.log.find((e) => e.method === 'DELETE' && /\/blobs\/uploads\//.test(e.path));
  assert.equal(deleted?.status, 204, 'upload session cancelled');
  assert.match(stderr, /push interrupted; nothing was tagged; upload sessions were cancelled/);
  const tag = await fetch(`${reg.url}/v2/os/interrupted/manifests/1`, { method: 'HEAD' });
  assert.equal(tag.status, 404, 'nothing was tagged');
});

test('--timeout does not cut short a registry completing a blob: the PUT that ends an upload waits longer', async (t) => {
  if (!requireTools(t, 'docker-registry', 'zstd')) return;
  const p = await payloads(t);
  const reg = await registry(t);
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  // Every blob's completing PUT answered 2.5 s late, as a registry checking a large blob would.
  proxy.addRule({ method: 'PUT', path: /\/blobs\/uploads\//, times: Infinity, action: { type: 'delay', ms: 2500 } });
  const r = await push(p, `${proxy.host}/os/slow-commit:1`, ['--timeout', '1']);
  assert.equal(r.code, 0, r.stderr);
  const completing = proxy.log.filter((e) => e.method === 'PUT' && e.path.includes('/blobs/uploads/'));
  assert.ok(completing.length >= 3, `payloads and config completed: ${completing.length}`);
  assert.ok(
    completing.every((e) => e.fault === 'delay' && e.status === 201),
    'each answered once, late',
  );
  assert.equal(new Set(completing.map((e) => e.path)).size, completing.length, 'no upload was completed twice');
});
