// Self-tests of the test infrastructure: the real registry in each auth/TLS
// mode, the token server, skopeo, and every fault kind of the fault proxy.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { request } from 'undici';
import { type DockerRegistryOptions, type RegistryHandle, startDockerRegistry } from './helpers/docker-registry.js';
import { basicChallengeRules, ecrRules, garRules, ghcrRules, startFaultProxy } from './helpers/fault-proxy.js';
import { skopeo } from './helpers/skopeo.js';
import { requireTools } from './helpers/tools.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function tarOf(name: string, content: string): Promise<Buffer> {
  const p = pack();
  p.entry({ name, mtime: new Date(0) }, content);
  p.finalize();
  const parts: Buffer[] = [];
  for await (const c of p) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Writes a one-layer OCI image layout tagged `tag`; returns the manifest bytes. */
async function makeLayout(dir: string, tag: string): Promise<Buffer> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer): Promise<{ digest: string; size: number }> => {
    const digest = sha256(b);
    await writeFile(join(blobs, digest.slice(7)), b);
    return { digest, size: b.length };
  };
  const tar = await tarOf('hello.txt', `hello from ${dir}\n`);
  const layer = await put(gzipSync(tar));
  const config = await put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      }),
    ),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  const m = await put(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return manifest;
}

async function tempDir(t: TestContext): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'oci-os-infra-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function registry(t: TestContext, opts: DockerRegistryOptions = {}): Promise<RegistryHandle> {
  const r = await startDockerRegistry(opts);
  t.after(() => r.stop());
  return r;
}

/** Pushes a fresh layout with skopeo and checks the registry serves the same manifest bytes. */
async function pushAndCheck(t: TestContext, host: string, flags: { dest: string[]; src: string[] }): Promise<void> {
  const dir = await tempDir(t);
  const manifest = await makeLayout(dir, 'v1');
  await skopeo(['copy', ...flags.dest, `oci:${dir}:v1`, `docker://${host}/infra/test:v1`]);
  const { stdout } = await skopeo(['inspect', '--raw', ...flags.src, `docker://${host}/infra/test:v1`]);
  assert.equal(stdout, manifest.toString('utf8'));
}

test('plain registry: skopeo push and read back, also through the fault proxy', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const r = await registry(t);
  assert.match(r.host, /^127\.0\.0\.1:\d+$/);
  const v2 = await request(`${r.url}/v2/`);
  await v2.body.dump();
  assert.equal(v2.statusCode, 200);
  const insecure = { dest: ['--dest-tls-verify=false'], src: ['--tls-verify=false'] };
  await pushAndCheck(t, r.host, insecure);

  const proxy = await startFaultProxy(r.url);
  t.after(() => proxy.stop());
  await pushAndCheck(t, proxy.host, insecure);
  const methods = new Set(proxy.log.map((e) => e.method));
  assert.ok(methods.has('PATCH') && methods.has('PUT'), `proxy saw ${[...methods].join(',')}`);
  assert.ok(proxy.log.every((e) => e.status > 0 && e.host === proxy.host));
});

test('htpasswd registry: Basic challenge, push with credentials, refusal without', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const r = await registry(t, { auth: 'htpasswd' });
  assert.ok(r.username && r.password);
  const anon = await request(`${r.url}/v2/`);
  await anon.body.dump();
  assert.equal(anon.statusCode, 401);
  assert.match(String(anon.headers['www-authenticate']), /^Basic realm=/);
  const ok = await request(`${r.url}/v2/`, { headers: { authorization: basic(r.username, r.password) } });
  await ok.body.dump();
  assert.equal(ok.statusCode, 200);
  const creds = `${r.username}:${r.password}`;
  await pushAndCheck(t, r.host, { dest: ['--dest-tls-verify=false', '--dest-creds', creds], src: ['--tls-verify=false', '--creds', creds] });
  await assert.rejects(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${r.host}/infra/test:v1`]), /unauthorized|authentication required/i);
});

test('tls registry: trusted through the test CA only', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'openssl')) return;
  const r = await registry(t, { tls: true });
  assert.ok(r.url.startsWith('https://') && r.caFile && r.certDir);
  await pushAndCheck(t, r.host, { dest: ['--dest-cert-dir', r.certDir], src: ['--cert-dir', r.certDir] });
  await assert.rejects(skopeo(['inspect', '--raw', `docker://${r.host}/infra/test:v1`]), /x509|certificate/i);
  const { Agent } = await import('undici');
  const { readFile } = await import('node:fs/promises');
  const dispatcher = new Agent({ connect: { ca: await readFile(r.caFile) } });
  t.after(() => dispatcher.close());
  const res = await request(`${r.url}/v2/infra/test/manifests/v1`, {
    dispatcher,
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  await res.body.dump();
  assert.equal(res.statusCode, 200);
  await assert.rejects(request(`${r.url}/v2/`), /certificate|self.signed/i);
  const proxy = await startFaultProxy(r.url, { upstreamCaFile: r.caFile });
  t.after(() => proxy.stop());
  const post = await request(`${proxy.url}/v2/infra/test/blobs/uploads/`, { method: 'POST' });
  await post.body.dump();
  assert.equal(post.statusCode, 202);
  assert.ok(String(post.headers.location).startsWith(`${proxy.url}/`), 'https Location rewritten to the proxy');
});

test('token registry: Bearer flow, scopes recorded, OAuth2 POST and refresh, expiry', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'openssl')) return;
  const r = await registry(t, { auth: 'token' });
  const ts = r.tokenServer!;
  const challenge = await request(`${r.url}/v2/`);
  await challenge.body.dump();
  assert.equal(challenge.statusCode, 401);
  assert.equal(challenge.headers['www-authenticate'], `Bearer realm="${ts.realm}",service="${ts.service}"`);

  const creds = `${r.username}:${r.password}`;
  await pushAndCheck(t, r.host, { dest: ['--dest-tls-verify=false', '--dest-creds', creds], src: ['--tls-verify=false', '--creds', creds] });
  const push = ts.requests.find((q) => q.scope.some((s) => s === 'repository:infra/test:pull,push'));
  assert.ok(push, `scopes seen: ${JSON.stringify(ts.requests.map((q) => q.scope))}`);
  assert.equal(push.account, r.username);
  assert.equal(push.basicAuthOk, true);
  assert.ok(ts.issued >= 1);

  const q = `service=${ts.service}&scope=repository:infra/test:pull`;
  const wrong = await request(`${ts.realm}?${q}`, { headers: { authorization: basic(r.username!, 'wrong') } });
  await wrong.body.dump();
  assert.equal(wrong.statusCode, 401);
  const anon = await request(`${ts.realm}?${q}`);
  await anon.body.dump();
  assert.equal(anon.statusCode, 401);

  const form = (f: Record<string, string>): Promise<{ statusCode: number; json: Record<string, unknown> }> =>
    request(ts.realm, { method: 'POST', body: new URLSearchParams(f).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } }).then(
      async (res) => ({ statusCode: res.statusCode, json: (await res.body.json()) as Record<string, unknown> }),
    );
  const pw = await form({
    grant_type: 'password',
    username: r.username!,
    password: r.password!,
    service: ts.service,
    scope: 'repository:infra/test:pull',
    client_id: 'oci-os',
  });
  assert.equal(pw.statusCode, 200);
  assert.equal(typeof pw.json.refresh_token, 'string');
  const refreshed = await form({
    grant_type: 'refresh_token',
    refresh_token: String(pw.json.refresh_token),
    service: ts.service,
    scope: 'repository:infra/test:pull',
  });
  assert.equal(refreshed.statusCode, 200);
  const header = JSON.parse(Buffer.from(String(refreshed.json.access_token).split('.')[0]!, 'base64url').toString());
  assert.equal(header.alg, 'RS256');
  assert.equal(header.x5c.length, 1);
  const tags = await request(`${r.url}/v2/infra/test/tags/list`, { headers: { authorization: `Bearer ${refreshed.json.access_token}` } });
  assert.deepEqual(await tags.body.json(), { name: 'infra/test', tags: ['v1'] });
  const badRefresh = await form({ grant_type: 'refresh_token', refresh_token: 'nope', service: ts.service });
  assert.equal(badRefresh.statusCode, 401);

  const expired = ts.mint(r.username!, [{ type: 'repository', name: 'infra/test', actions: ['pull'] }], -120);
  const late = await request(`${r.url}/v2/infra/test/tags/list`, { headers: { authorization: `Bearer ${expired}` } });
  await late.body.dump();
  assert.equal(late.statusCode, 401);
});

test('token registry with exact expiry: a 2 s token really stops working', async (t) => {
  if (!requireTools(t, 'docker-registry', 'openssl')) return;
  const r = await registry(t, { auth: 'token', tokenExpiresIn: 2, exactTokenExpiry: true });
  const ts = r.tokenServer!;
  const res = await request(`${ts.realm}?service=${ts.service}&scope=repository:infra/exp:pull`, {
    headers: { authorization: basic(r.username!, r.password!) },
  });
  const body = (await res.body.json()) as { token: string; expires_in: number };
  assert.equal(body.expires_in, 2);
  const use = async (): Promise<number> => {
    const x = await request(`${r.url}/v2/infra/exp/tags/list`, { headers: { authorization: `Bearer ${body.token}` } });
    await x.body.dump();
    return x.statusCode;
  };
  assert.equal(await use(), 404); // accepted: the repository just does not exist
  await new Promise((resolve) => setTimeout(resolve, 3100));
  assert.equal(await use(), 401);
});

/** POST an upload session through `base`; returns the Location. */
async function startUpload(base: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(`${base}/v2/infra/fault/blobs/uploads/`, { method: 'POST', headers });
  await res.body.dump();
  assert.equal(res.statusCode, 202);
  return String(res.headers.location);
}

async function patch(
  location: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(location, {
    method: 'PATCH',
    body,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length), ...headers },
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function finish(location: string, digest: string): Promise<number> {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  const res = await request(u, { method: 'PUT' });
  await res.body.dump();
  return res.statusCode;
}

test('fault proxy against the plain registry', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const r = await registry(t);
  const proxy = await startFaultProxy(r.url);
  t.after(() => proxy.stop());
  const blob = Buffer.alloc(3 * MiB, 1);
  const reset = (): void => {
    proxy.clearRules();
    proxy.clearLog();
    proxy.locationMode = 'proxy';
    proxy.onRequest = undefined;
  };

  await t.test('forwards, streams and rewrites Location to the proxy', async () => {
    reset();
    const loc = await startUpload(proxy.url);
    assert.ok(loc.startsWith(`${proxy.url}/v2/infra/fault/blobs/uploads/`), loc);
    const p = await patch(loc, blob);
    assert.equal(p.status, 202);
    assert.equal(p.headers.range, `0-${blob.length - 1}`);
    assert.equal(await finish(String(p.headers.location), sha256(blob)), 201);
    const head = await request(`${proxy.url}/v2/infra/fault/blobs/${sha256(blob)}`, { method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['docker-content-digest'], sha256(blob));
    assert.deepEqual(
      proxy.log.map((e) => `${e.method} ${e.status}`),
      ['POST 202', 'PATCH 202', 'PUT 201', 'HEAD 200'],
    );
    assert.equal(proxy.log[1]!.requestBodyBytes, blob.length);
  });

  await t.test('fixed answer once (503 + Retry-After), then passes', async () => {
    reset();
    proxy.addRule({ method: 'GET', path: /^\/v2\/$/, action: { type: 'respond', status: 503, headers: { 'retry-after': '1' } } });
    const a = await request(`${proxy.url}/v2/`);
    await a.body.dump();
    assert.equal(a.statusCode, 503);
    assert.equal(a.headers['retry-after'], '1');
    const b = await request(`${proxy.url}/v2/`);
    await b.body.dump();
    assert.equal(b.statusCode, 200);
    assert.deepEqual(proxy.fired(), [1]);
  });

  await t.test('nth picks the 2nd matching request', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: /\/blobs\/uploads\//, nth: 2, action: { type: 'respond', status: 500 } });
    const loc = await startUpload(proxy.url);
    const first = await patch(loc, Buffer.alloc(1000, 2), { 'content-range': '0-999' });
    assert.equal(first.status, 202);
    const second = await patch(String(first.headers.location), Buffer.alloc(1000, 2), { 'content-range': '1000-1999' });
    assert.equal(second.status, 500);
    assert.equal(proxy.log.at(-1)!.fault, 'respond');
  });

  await t.test('reset mid-body: client socket dies, registry sees a partial PATCH', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: /\/blobs\/uploads\//, action: { type: 'reset', afterBytes: MiB } });
    const loc = await startUpload(proxy.url);
    await assert.rejects(patch(loc, blob));
    const entry = proxy.log.find((e) => e.method === 'PATCH')!;
    assert.equal(entry.status, 0);
    assert.equal(entry.requestBodyBytes, MiB);
    // The registry notices the cut on its own schedule: wait for its log line.
    const cut = /client disconnected during blob PATCH.*copied=1048576/;
    for (let i = 0; i < 100 && !cut.test(r.logTail(32 * 1024)); i++) await new Promise((res) => setTimeout(res, 50));
    assert.ok(cut.test(r.logTail(32 * 1024)), 'registry did not log the cut PATCH');
    // distribution keeps the partial bytes, so the old session state no longer matches.
    const status = await request(loc);
    const text = await status.body.text();
    assert.equal(status.statusCode, 404, text);
    assert.match(text, /BLOB_UPLOAD_INVALID/);
    // A body shorter than afterBytes still ends in a reset, never in an answer.
    proxy.addRule({ method: 'PATCH', path: /\/blobs\/uploads\//, action: { type: 'reset', afterBytes: 10 * MiB } });
    await assert.rejects(patch(await startUpload(proxy.url), Buffer.alloc(1000, 1)));
    assert.equal(proxy.log.at(-1)!.requestBodyBytes, 1000);
    assert.equal(proxy.log.at(-1)!.status, 0);
  });

  await t.test('resetResponse cuts a download after N bytes', async () => {
    reset();
    proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, action: { type: 'resetResponse', afterBytes: 1000 } });
    const res = await request(`${proxy.url}/v2/infra/fault/blobs/${sha256(blob)}`);
    assert.equal(res.statusCode, 200);
    await assert.rejects(res.body.arrayBuffer());
  });

  await t.test('GHCR: PATCH over 4 MiB gets 416, smaller passes', async () => {
    reset();
    proxy.addRule(...ghcrRules());
    const loc = await startUpload(proxy.url);
    const big = await patch(loc, Buffer.alloc(5 * MiB, 3), { 'content-range': `0-${5 * MiB - 1}` });
    assert.equal(big.status, 416);
    assert.match(big.text, /exceeds the maximum permissible limit of 4\.00MiB/);
    const small = await patch(loc, Buffer.alloc(MiB, 3), { 'content-range': `0-${MiB - 1}` });
    assert.equal(small.status, 202);
  });

  await t.test('ECR: small PATCH refused, big PATCH answers 201 without Range', async () => {
    reset();
    proxy.addRule(...ecrRules({ dropRange: true }));
    const loc = await startUpload(proxy.url);
    const small = await patch(loc, Buffer.alloc(MiB, 4));
    assert.equal(small.status, 400);
    assert.match(small.text, /LayerPartTooSmallException/);
    const big = Buffer.alloc(6 * MiB, 4);
    const ok = await patch(loc, big);
    assert.equal(ok.status, 201);
    assert.equal(ok.headers.range, undefined);
    assert.equal(await finish(String(ok.headers.location), sha256(big)), 201);
  });

  await t.test('GAR: every PATCH refused, monolithic PUT works', async () => {
    reset();
    proxy.addRule(...garRules());
    const loc = await startUpload(proxy.url);
    assert.equal((await patch(loc, Buffer.alloc(10, 5))).status, 405);
    const body = Buffer.from('monolithic');
    const u = new URL(loc);
    u.searchParams.set('digest', sha256(body));
    const put = await request(u, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
    await put.body.dump();
    assert.equal(put.statusCode, 201);
  });

  await t.test('relative Location', async () => {
    reset();
    proxy.locationMode = 'relative';
    const loc = await startUpload(proxy.url);
    assert.match(loc, /^\/v2\/infra\/fault\/blobs\/uploads\/[^?]+\?_state=/);
  });

  await t.test('Location on the second listener, which never gets Authorization', async () => {
    reset();
    proxy.locationMode = 'other';
    proxy.addRule(...basicChallengeRules('main'));
    const denied = await request(`${proxy.url}/v2/`);
    await denied.body.dump();
    assert.equal(denied.statusCode, 401);
    const loc = await startUpload(proxy.url, { authorization: basic('u', 'p') });
    assert.ok(proxy.otherHost && loc.startsWith(`http://${proxy.otherHost}/`), loc);
    const body = Buffer.alloc(2000, 6);
    const p = await patch(loc, body);
    assert.equal(p.status, 202);
    assert.ok(String(p.headers.location).startsWith(`http://${proxy.otherHost}/`));
    assert.equal(await finish(String(p.headers.location), sha256(body)), 201);
    assert.equal(proxy.otherLog.length, 2);
    assert.ok(proxy.otherLog.every((e) => !e.hadAuthorization && e.listener === 'other'));
    assert.equal(proxy.log.at(-1)!.hadAuthorization, true);
  });

  await t.test('onRequest hook and delay', async () => {
    reset();
    proxy.onRequest = (req) => (req.path === '/v2/_catalog' ? { type: 'respond', status: 418, body: 'teapot' } : undefined);
    proxy.addRule({ method: 'GET', path: /^\/v2\/$/, action: { type: 'delay', ms: 300 } });
    const tea = await request(`${proxy.url}/v2/_catalog`);
    assert.equal(tea.statusCode, 418);
    assert.equal(await tea.body.text(), 'teapot');
    const t0 = Date.now();
    const slow = await request(`${proxy.url}/v2/`);
    await slow.body.dump();
    assert.equal(slow.statusCode, 200);
    assert.ok(Date.now() - t0 >= 250);
  });
});

test('fault proxy: 401 with the upstream token challenge mid-upload', async (t) => {
  if (!requireTools(t, 'docker-registry', 'openssl')) return;
  const r = await registry(t, { auth: 'token' });
  const ts = r.tokenServer!;
  const proxy = await startFaultProxy(r.url);
  t.after(() => proxy.stop());
  const tok = await request(`${ts.realm}?service=${ts.service}&scope=repository:infra/fault:pull,push`, {
    headers: { authorization: basic(r.username!, r.password!) },
  });
  const auth = { authorization: `Bearer ${((await tok.body.json()) as { token: string }).token}` };
  proxy.addRule({ method: 'PATCH', path: /\/blobs\/uploads\//, action: { type: 'unauthorized' } });
  const loc = await startUpload(proxy.url, auth);
  const body = Buffer.alloc(4096, 7);
  const denied = await patch(loc, body, auth);
  assert.equal(denied.status, 401);
  assert.equal(denied.headers['www-authenticate'], `Bearer realm="${ts.realm}",service="${ts.service}",scope="repository:infra/fault:pull,push"`);
  const again = await patch(loc, body, auth);
  assert.equal(again.status, 202);
  assert.ok(proxy.log.every((e) => e.hadAuthorization));
});
