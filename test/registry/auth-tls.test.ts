import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import pLimit from 'p-limit';
import { request } from 'undici';
import { isOciError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { parseReference } from '../../src/registry/index.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { basicChallengeRules, startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';
import { fastClient, MiB, randomBytesStream, randomDigest } from './helpers.js';

const UPLOAD = /\/blobs\/uploads\//;

async function drain(s: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return sha256Digest(Buffer.concat(parts));
}

test('Basic auth (htpasswd): push with credentials, clear failures without or with wrong ones', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry({ auth: 'htpasswd' });
  t.after(() => reg.stop());
  const good = fastClient({ credentials: { username: reg.username!, password: reg.password! }, chunkSize: MiB });
  t.after(() => good.client.close());
  const repo = good.client.repository(`${reg.host}/auth/basic`);
  const r = await repo.uploadStream(randomBytesStream(2 * MiB + 9, 3));
  assert.equal(r.digest, await randomDigest(2 * MiB + 9, 3));
  assert.equal(await drain(await repo.fetch({ mediaType: 'application/octet-stream', digest: r.digest, size: r.size })), r.digest);

  // The environment is a source of credentials too.
  const env = fastClient({ explicitCredentialsOnly: false, env: { OCI_OS_USERNAME: reg.username!, OCI_OS_PASSWORD: reg.password!, HOME: '/nonexistent' } });
  t.after(() => env.client.close());
  assert.ok(await env.client.repository(`${reg.host}/auth/basic`).exists({ mediaType: 'application/octet-stream', digest: r.digest, size: r.size }));

  const wrong = fastClient({ credentials: { username: reg.username!, password: 'not-the-password' } });
  t.after(() => wrong.client.close());
  await assert.rejects(wrong.client.repository(`${reg.host}/auth/basic`).uploadStream(randomBytesStream(10, 1)), (e: unknown) => {
    assert.ok(isOciError(e, 'AUTH_FAILED'), String(e));
    assert.match((e as Error).message, /rejected the username and password/);
    assert.ok(!(e as Error).message.includes('not-the-password'));
    return true;
  });
  const none = fastClient();
  t.after(() => none.client.close());
  await assert.rejects(
    none.client.repository(`${reg.host}/auth/basic`).uploadStream(randomBytesStream(10, 1)),
    (e: unknown) => isOciError(e, 'AUTH_FAILED') && /requires a username and password/.test((e as Error).message) && !!(e as { hint?: string }).hint,
  );
});

test('token auth: scopes, re-authentication on a 401 mid-upload, expiry, shared tokens, OAuth2 refresh tokens', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry({ auth: 'token', tokenExpiresIn: 300, exactTokenExpiry: true });
  t.after(() => reg.stop());
  const ts = reg.tokenServer!;
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const creds = { username: reg.username!, password: reg.password! };

  await t.test('a 401 in the middle of an upload gets a new token and the upload carries on', async () => {
    const { client } = fastClient({ credentials: creds, chunkSize: MiB });
    t.after(() => client.close());
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'unauthorized' } });
    const before = ts.issued;
    const repo = client.repository(`${proxy.host}/auth/token`);
    const r = await repo.uploadStream(randomBytesStream(4 * MiB + 1, 4));
    assert.equal(r.digest, await randomDigest(4 * MiB + 1, 4));
    assert.equal(r.upload!.resumes, 0);
    assert.equal(ts.issued - before, 2, 'one token at the start, one after the 401');
    const last = ts.requests.at(-1)!;
    assert.ok(last.basicAuthOk);
    assert.ok(last.scope.includes('repository:auth/token:pull,push'), last.scope.join(' '));
    assert.equal(proxy.log.filter((e) => e.status === 401 && e.method === 'PATCH').length, 1);
    // Every request to the registry after the first challenge carried a token.
    assert.ok(proxy.log.slice(1).every((e) => e.hadAuthorization));
    assert.equal(await drain(await repo.fetch({ mediaType: 'application/octet-stream', digest: r.digest, size: r.size })), r.digest);
  });

  await t.test('a 401 on a streamed monolithic PUT: new token, body sent again from reopen()', async () => {
    const { client } = fastClient({ credentials: creds, chunkSize: 256 * 1024 });
    t.after(() => client.close());
    proxy.clearRules();
    proxy.addRule(
      { method: 'PATCH', path: UPLOAD, times: Infinity, action: { type: 'respond', status: 405 } },
      { method: 'PUT', path: UPLOAD, action: { type: 'unauthorized' } },
    );
    t.after(() => proxy.clearRules());
    const size = MiB + 3;
    const digest = await randomDigest(size, 11);
    const repo = client.repository(`${proxy.host}/auth/mono`);
    const r = await repo.pushContent({ mediaType: 'application/octet-stream', digest, size }, randomBytesStream(size, 11), {
      reopen: () => randomBytesStream(size, 11),
    });
    assert.equal(r.upload!.mode, 'monolithic');
    assert.equal(r.upload!.restarts, 1);
    assert.ok(await repo.exists({ mediaType: 'application/octet-stream', digest, size }));
  });

  await t.test('concurrent uploads share one token', async () => {
    const { client } = fastClient({ credentials: creds, chunkSize: MiB });
    t.after(() => client.close());
    const before = ts.issued;
    const limit = pLimit(4);
    const repo = client.repository(`${reg.host}/auth/parallel`);
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => limit(() => repo.uploadStream(randomBytesStream(MiB + i, 40 + i)))));
    assert.equal(results.length, 6);
    assert.equal(ts.issued - before, 1);
  });

  await t.test('tokens that expire during a slow upload are renewed', async () => {
    ts.expiresIn = 2;
    t.after(() => {
      ts.expiresIn = 300;
    });
    const { client } = fastClient({ credentials: creds, chunkSize: 256 * 1024 });
    t.after(() => client.close());
    const before = ts.issued;
    async function* slow(): AsyncGenerator<Buffer> {
      for await (const b of randomBytesStream(2 * MiB, 5, 256 * 1024)) {
        await new Promise((r) => setTimeout(r, 350));
        yield b;
      }
    }
    const r = await client.repository(`${reg.host}/auth/slow`).uploadStream(slow());
    assert.equal(r.digest, await randomDigest(2 * MiB, 5));
    assert.ok(ts.issued - before >= 2, `issued ${ts.issued - before}`);
  });

  await t.test('an identity token is exchanged with an OAuth2 refresh-token POST', async () => {
    const form = new URLSearchParams({
      grant_type: 'password',
      username: creds.username,
      password: creds.password,
      service: ts.service,
      client_id: 'test',
      scope: 'repository:auth/oauth:pull',
    });
    const res = await request(ts.realm, { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    const { refresh_token } = (await res.body.json()) as { refresh_token: string };
    const { client } = fastClient({ credentials: { identityToken: refresh_token } });
    t.after(() => client.close());
    await client.repository(`${reg.host}/auth/oauth`).uploadStream(randomBytesStream(1000, 6));
    const last = ts.requests.at(-1)!;
    assert.equal(last.method, 'POST');
    assert.equal(last.grantType, 'refresh_token');
  });

  await t.test('wrong credentials fail at the token server without leaking them', async () => {
    const { client } = fastClient({ credentials: { username: creds.username, password: 'wrong-secret' } });
    t.after(() => client.close());
    await assert.rejects(
      client.repository(`${reg.host}/auth/token`).uploadStream(randomBytesStream(10, 1)),
      (e: unknown) =>
        isOciError(e, 'AUTH_FAILED') && /token server .* rejected the credentials/.test((e as Error).message) && !(e as Error).message.includes('wrong-secret'),
    );
  });
});

test('TLS: trusted with --ca-file, accepted with --insecure, refused otherwise with a hint', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry({ tls: true });
  t.after(() => reg.stop());
  for (const opts of [
    { caFile: reg.caFile!, plainHttp: false },
    { insecure: true, plainHttp: false },
  ]) {
    const { client } = fastClient({ ...opts, chunkSize: MiB });
    t.after(() => client.close());
    const r = await client.repository(`${reg.host}/tls/blob`).uploadStream(randomBytesStream(MiB + 5, 7));
    assert.equal(r.digest, await randomDigest(MiB + 5, 7));
  }
  const strict = fastClient({ plainHttp: false });
  t.after(() => strict.client.close());
  await assert.rejects(
    strict.client.repository(`${reg.host}/tls/blob`).uploadStream(randomBytesStream(10, 1)),
    (e: unknown) => isOciError(e, 'TLS') && (e as Error).message.includes(reg.host) && /--ca-file/.test((e as { hint?: string }).hint ?? ''),
  );
  // Loopback defaults to plain HTTP: against a TLS registry that is a clear error too.
  const plain = fastClient();
  t.after(() => plain.client.close());
  await assert.rejects(plain.client.repository(`${reg.host}/tls/blob`).exists({ mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 }), (e: unknown) =>
    isOciError(e, 'NETWORK', 'TLS', 'REGISTRY'),
  );
});

test('credentials stay on the registry host: cross-host upload Locations and redirects get no Authorization', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url, { locationMode: 'other' });
  t.after(() => proxy.stop());
  proxy.addRule(...basicChallengeRules('main'));
  const { client } = fastClient({ credentials: { username: 'u', password: 'p' }, chunkSize: MiB });
  t.after(() => client.close());
  const repo = client.repository(`${proxy.host}/cross/host`);
  const r = await repo.uploadStream(randomBytesStream(3 * MiB + 1, 8));
  assert.equal(r.digest, await randomDigest(3 * MiB + 1, 8));
  assert.ok(proxy.otherLog.length >= 4, 'PATCHes and PUT went to the other host');
  assert.ok(
    proxy.otherLog.every((e) => !e.hadAuthorization),
    'no Authorization on the other host',
  );
  assert.ok(
    proxy.log.some((e) => e.hadAuthorization),
    'the registry host got credentials',
  );

  // A blob GET redirected to another host (object storage) is followed without Authorization.
  const seen: Array<{ host: string; auth: boolean }> = [];
  const serve =
    (host: string) =>
    (req: IncomingMessage, res: ServerResponse): void => {
      seen.push({ host, auth: req.headers.authorization !== undefined });
      if (host === 'main') {
        if (!req.headers.authorization) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
          return;
        }
        res.writeHead(307, { location: `${storeUrl}/bucket/blob?X-Signature=secret` }).end();
        return;
      }
      res.writeHead(200, { 'content-length': '5' }).end('hello');
    };
  const main = createServer(serve('main'));
  const store = createServer(serve('store'));
  await new Promise<void>((r) => main.listen(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => store.listen(0, '127.0.0.2', () => r()));
  t.after(() => {
    main.close();
    store.close();
  });
  const storeUrl = `http://127.0.0.2:${(store.address() as AddressInfo).port}`;
  const c2 = fastClient({ credentials: { username: 'u', password: 'p' } });
  t.after(() => c2.client.close());
  const r2 = c2.client.repository(`127.0.0.1:${(main.address() as AddressInfo).port}/redirect/me`);
  const digest = sha256Digest('hello');
  assert.equal(await drain(await r2.fetch({ mediaType: 'application/octet-stream', digest, size: 5 })), digest);
  assert.deepEqual(seen, [
    { host: 'main', auth: false },
    { host: 'main', auth: true },
    { host: 'store', auth: false },
  ]);
});

test('network failures name the host; warnings are surfaced once', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const { client, sleeps } = fastClient();
  t.after(() => client.close());
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  await assert.rejects(
    client.repository(`127.0.0.1:${port}/x/y`).exists({ mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 }),
    (e: unknown) => isOciError(e, 'NETWORK') && (e as Error).message.includes(`127.0.0.1:${port}`) && /refused/.test((e as Error).message),
  );
  assert.equal(sleeps.length, 5, 'connection refused was retried');

  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  proxy.addRule({ method: 'HEAD', times: Infinity, action: { type: 'rewrite', setHeaders: { warning: '299 - "this registry is deprecated"' } } });
  const warnings: string[] = [];
  const w = fastClient({ onWarning: (m) => warnings.push(m) });
  t.after(() => w.client.close());
  const repo = w.client.repository(`${proxy.host}/warn/me`);
  for (let i = 0; i < 3; i++) await repo.exists({ mediaType: 'x', digest: `sha256:${'1'.repeat(64)}`, size: 1 });
  assert.deepEqual(warnings, ['this registry is deprecated']);
});

/** An HTTP server on 127.0.0.1 that logs each request (with its body) and answers through `handle`. */
async function recordingServer(
  t: { after(fn: () => unknown): void },
  name: string,
  log: string[],
  handle: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<string> {
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const auth = req.headers.authorization;
      const shown = auth?.startsWith('Basic ') ? `Basic ${Buffer.from(auth.slice(6), 'base64').toString()}` : (auth ?? '-');
      log.push(`${name} ${req.method} ${req.url} auth=${shown} body=${body}`);
      handle(req, res, body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => srv.close());
  return `127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

test('explicit credentials and OCI_OS_* go only to the registry they are bound to, not to every registry a client talks to', async (t) => {
  const log: string[] = [];
  // The source: anonymous Bearer tokens from its own token server. The destination: Basic auth.
  const realm = await recordingServer(t, 'src-realm', log, (_q, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"anon","expires_in":300}'),
  );
  const bearer = `Bearer realm="http://${realm}/token",service="src"`;
  const src = await recordingServer(t, 'src', log, (req, res) => {
    if (!req.headers.authorization) res.writeHead(401, { 'www-authenticate': bearer }).end();
    else res.writeHead(200, { 'content-length': '5' }).end();
  });
  const dst = await recordingServer(t, 'dst', log, (req, res) => {
    if (!req.headers.authorization) res.writeHead(401, { 'www-authenticate': 'Basic realm="dst"' }).end();
    else res.writeHead(200, { 'content-length': '5' }).end();
  });
  const blob = { mediaType: 'application/octet-stream', digest: `sha256:${'2'.repeat(64)}`, size: 5 };
  const touchBoth = async (client: ReturnType<typeof fastClient>['client'], first: 'src' | 'dst') => {
    const order = first === 'src' ? [src, dst] : [dst, src];
    for (const host of order) assert.ok(await client.repository(`${host}/a/b`).exists(blob), host);
  };

  // Bound to the destination: the source's token server never sees them, whichever registry is used first.
  const flags = fastClient({ credentials: { username: 'ci', password: 'DEST-ONLY' }, credentialsHost: dst });
  t.after(() => flags.client.close());
  await touchBoth(flags.client, 'src');
  const env = fastClient({
    explicitCredentialsOnly: false,
    env: { OCI_OS_USERNAME: 'ci', OCI_OS_PASSWORD: 'ENV-DEST-ONLY', HOME: '/nonexistent' },
    credentialsHost: dst,
  });
  t.after(() => env.client.close());
  await touchBoth(env.client, 'src');
  // Not bound explicitly: they belong to the first registry the client is asked for.
  const first = fastClient({ credentials: { username: 'ci', password: 'FIRST-ONLY' } });
  t.after(() => first.client.close());
  await touchBoth(first.client, 'dst');

  const leaked = log.filter((l) => /ONLY/.test(l) && !l.startsWith('dst '));
  assert.deepEqual(leaked, []);
  for (const pw of ['DEST-ONLY', 'ENV-DEST-ONLY', 'FIRST-ONLY'])
    assert.ok(
      log.some((l) => l.startsWith('dst ') && l.includes(`auth=Basic ci:${pw} `)),
      pw,
    );
  assert.ok(
    log.filter((l) => l.startsWith('src-realm')).every((l) => l.includes('auth=- ')),
    log.join('\n'),
  );

  // Bound to no registry (a command with no registry target): nobody gets them.
  const none = fastClient({ credentials: { username: 'ci', password: 'NOBODY' }, credentialsHost: false });
  t.after(() => none.client.close());
  await assert.rejects(none.client.repository(`${dst}/a/b`).exists(blob), (e: unknown) => isOciError(e, 'AUTH_FAILED'));
  assert.ok(!log.some((l) => l.includes('NOBODY')));
});

test('a request body never follows a redirect to another origin (token requests carry refresh tokens)', async (t) => {
  const log: string[] = [];
  const sink = await recordingServer(t, 'sink', log, (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"stolen"}'));
  const realm = await recordingServer(t, 'realm', log, (req, res) => {
    if (req.method === 'POST') res.writeHead(307, { location: `http://${sink}/token` }).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"T","expires_in":300}');
  });
  const reg = await recordingServer(t, 'reg', log, (req, res) => {
    if (req.url === '/v2/' && !req.headers.authorization) res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm}/token",service="s"` }).end();
    else if (req.url === '/v2/' || req.url === '/here') res.writeHead(201).end();
    else if (req.url === '/same') res.writeHead(307, { location: '/here' }).end();
    else if (req.url === '/away') res.writeHead(308, { location: `http://${sink}/put` }).end();
    else res.writeHead(404).end();
  });

  // The identity token is POSTed to the realm; the realm's 307 to another origin is refused, not followed.
  const { client } = fastClient({ credentials: { identityToken: 'SECRET-REFRESH-TOKEN' } });
  t.after(() => client.close());
  const http = client.http(parseReference(`${reg}/x`));
  await assert.rejects(http.send({ method: 'GET', url: '/v2/', scopes: ['repository:x:pull'] }), (e: unknown) => {
    assert.ok(isOciError(e, 'REGISTRY'), String(e));
    assert.match((e as Error).message, /^POST to http:\/\/127\.0\.0\.1:\d+ was redirected \(307\) to another origin/);
    assert.ok(!(e as Error).message.includes('SECRET'));
    return true;
  });
  // Same for any request with a body; on the same origin the body follows as before.
  const plain = fastClient();
  t.after(() => plain.client.close());
  const put = plain.client.http(parseReference(`${reg}/x`));
  await assert.rejects(
    put.send({ method: 'PUT', url: '/away', body: Buffer.from('manifest-bytes'), scopes: [] }),
    (e: unknown) => isOciError(e, 'REGISTRY') && /redirected \(308\) to another origin/.test((e as Error).message),
  );
  const same = await put.send({ method: 'PUT', url: '/same', body: Buffer.from('manifest-bytes'), scopes: [] });
  await same.body.dump();
  assert.equal(same.status, 201);
  assert.ok(log.includes('reg PUT /here auth=- body=manifest-bytes'), log.join('\n'));
  assert.deepEqual(
    log.filter((l) => l.startsWith('sink')),
    [],
  );
});

test('registry host names are compared without case: LOCALHOST speaks plain HTTP and gets its credentials', async (t) => {
  const log: string[] = [];
  const host = await recordingServer(t, 'reg', log, (req, res) => {
    if (!req.headers.authorization) res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    else res.writeHead(200, { 'content-length': '1' }).end();
  });
  const { client } = fastClient({ credentials: { username: 'u', password: 'p' } });
  t.after(() => client.close());
  const upper = host.replace('127.0.0.1', 'LocalHost');
  assert.ok(await client.repository(`${upper}/case/test`).exists({ mediaType: 'x', digest: `sha256:${'3'.repeat(64)}`, size: 1 }));
  assert.ok(
    log.some((l) => l.includes('auth=Basic u:p')),
    log.join('\n'),
  );
});
