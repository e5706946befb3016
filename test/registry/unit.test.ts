import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { parseLoginTarget } from '../../src/registry/auth/login.js';
import { tokenCacheKey } from '../../src/registry/auth/token-cache.js';
import {
  Authenticator,
  defaultChunkSizeFor,
  defaultStreamedChunkSizeFor,
  formatReference,
  grownStreamedChunkSize,
  isLoopbackHost,
  maxStreamedChunkSize,
  mergeScopes,
  parseErrorBody,
  parseReference,
  parseRetryAfter,
  parseUploadRange,
  parseWarnings,
  parseWwwAuthenticate,
  RegistryError,
  RetryPolicy,
  redactText,
  redactUrl,
  resolveCredentials,
  TokenCache,
  withDigest,
} from '../../src/registry/index.js';
import { Transport } from '../../src/registry/transport.js';
import { redactUserinfo } from '../../src/secrets/redact.js';

test('references are normalized like Docker', () => {
  assert.deepEqual(parseReference('alpine'), { registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'library/alpine' });
  assert.deepEqual(parseReference('alpine:3.20'), { registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'library/alpine', tag: '3.20' });
  assert.deepEqual(parseReference('org/img'), { registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'org/img' });
  assert.equal(parseReference('index.docker.io/x/y').registry, 'docker.io');
  assert.deepEqual(parseReference('localhost/a'), { registry: 'localhost', apiHost: 'localhost', repository: 'a' });
  assert.deepEqual(parseReference('localhost:5000/a/b:t'), { registry: 'localhost:5000', apiHost: 'localhost:5000', repository: 'a/b', tag: 't' });
  assert.deepEqual(parseReference('127.0.0.1:5000/os/img'), { registry: '127.0.0.1:5000', apiHost: '127.0.0.1:5000', repository: 'os/img' });
  assert.deepEqual(parseReference('[::1]:5000/os'), { registry: '[::1]:5000', apiHost: '[::1]:5000', repository: 'os' });
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseReference(`ghcr.io/o/r:v1@${d}`), { registry: 'ghcr.io', apiHost: 'ghcr.io', repository: 'o/r', tag: 'v1', digest: d });
  assert.deepEqual(parseReference(`ghcr.io/o/r@${d}`), { registry: 'ghcr.io', apiHost: 'ghcr.io', repository: 'o/r', digest: d });
  assert.equal(parseReference('ghcr.io/a.b-c__d/e---f').repository, 'a.b-c__d/e---f');
  assert.equal(formatReference(parseReference('alpine:1')), 'docker.io/library/alpine:1');
});

test('registry hosts are case-insensitive: one spelling, lower case, from parsing on', () => {
  assert.deepEqual(parseReference('GHCR.IO/owner/repo:tag'), { registry: 'ghcr.io', apiHost: 'ghcr.io', repository: 'owner/repo', tag: 'tag' });
  assert.equal(formatReference(parseReference('Registry.Example.COM:5000/a:Tag')), 'registry.example.com:5000/a:Tag');
  assert.deepEqual(parseReference('Index.Docker.IO/x/y'), { registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'x/y' });
  assert.deepEqual(parseReference('LocalHost/a'), { registry: 'localhost', apiHost: 'localhost', repository: 'a' });
  assert.equal(parseReference('[::ABCD]:5000/a').apiHost, '[::abcd]:5000');
  assert.equal(parseLoginTarget('LocalHost:5000').registry, 'localhost:5000');
  // Library callers may pass a host as written.
  assert.equal(defaultChunkSizeFor('GHCR.io'), 4 * 1024 * 1024);
  assert.equal(defaultStreamedChunkSizeFor('GHCR.io'), 4 * 1024 * 1024);
  assert.equal(defaultStreamedChunkSizeFor('quay.io'), maxStreamedChunkSize);
});

test('invalid references name what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['Upper/case', /lowercase/],
    ['ghcr.io/o/r:-bad', /tag "-bad"/],
    [`ghcr.io/o/r:${'t'.repeat(129)}`, /tag/],
    ['ghcr.io/o/r@sha256:abc', /64 lowercase hex/],
    ['ghcr.io/o/r@nodigest', /not a digest/],
    // Asked for only when what comes back can be checked.
    ['ghcr.io/o/r@md5:d41d8cd98f00b204e9800998ecf8427e', /digest algorithm "md5" is not supported \(supported: sha256, sha384, sha512\)/],
    ['ghcr.io/o/r@sha512:abcd', /"sha512:abcd" is not a valid sha512 digest/],
    ['ghcr.io/', /repository name is missing/],
    ['ghcr.io/a//b', /repository/],
    ['ghcr.io/a_-b', /repository/],
    ['host:99999/a', /port 99999/],
    [`ghcr.io/${'a'.repeat(250)}`, /longer than 255/],
  ];
  for (const [input, re] of cases) {
    assert.throws(
      () => parseReference(input),
      (e: unknown) => isOciError(e, 'INVALID_REFERENCE') && re.test((e as Error).message),
      input,
    );
  }
});

test('loopback hosts', () => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.1.2.3:80', '[::1]', '[::1]:5000']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['ghcr.io', '10.0.0.1:5000', 'localhost.example.com', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h);
  // Host names are case-insensitive: LOCALHOST is loopback too (plain HTTP by default).
  for (const h of ['LOCALHOST:5000', 'LocalHost', '[::1]:5000']) assert.ok(isLoopbackHost(h), h);
  assert.equal(defaultChunkSizeFor('ghcr.io'), 4 * 1024 * 1024);
  assert.equal(defaultChunkSizeFor('quay.io'), 8 * 1024 * 1024);
});

test('a password typed into a reference or a login target is not echoed', () => {
  for (const input of [
    'ci:S3CRET@registry.example.com/x',
    'ci:S3CRET@registry.example.com:5000/x:1',
    'ci:S3/CRET@registry.example.com/x',
    'ci:p@S3CRET@localhost:5000/x',
    'ci:S3/CRET@ghcr.io',
    'ci:S3CRET@localhost:5000',
  ]) {
    assert.throws(
      () => parseReference(input),
      (e: unknown) => {
        const m = (e as Error).message;
        return isOciError(e, 'INVALID_REFERENCE') && /"ci:\*\*\*@/.test(m) && /password/.test(m) && !/S3/.test(m);
      },
      input,
    );
  }
  // name:tag@digest is a reference, not user-info: its errors still quote it whole.
  assert.throws(
    () => parseReference('alpine:3.20@sha256:abc'),
    (e: unknown) => (e as Error).message.includes('"alpine:3.20@sha256:abc"'),
  );
  assert.equal(parseReference(`alpine:3.20@sha256:${'a'.repeat(64)}`).tag, '3.20');
  for (const input of [
    'https://ci:S3CRET@registry.example.com',
    'ci:S3CRET@registry.example.com',
    'http://ci:S3/CRET@localhost:5000',
    'https://S3CRET@ghcr.io/v1/',
  ]) {
    assert.throws(
      () => parseLoginTarget(input),
      (e: unknown) => {
        const m = (e as Error).message;
        return isOciError(e, 'USAGE') && /\*\*\*@/.test(m) && /--password-stdin/.test(m) && !/S3/.test(m);
      },
      input,
    );
  }
  assert.equal(parseLoginTarget('https://Registry.Example.com/v1/').registry, 'registry.example.com');
});

test('WWW-Authenticate: Bearer, Basic, several challenges, escapes', () => {
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm=simple, Bearer realm="r", error="invalid_token"'), [
    { scheme: 'basic', params: { realm: 'simple' } },
    { scheme: 'bearer', params: { realm: 'r', error: 'invalid_token' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('BEARER Realm="a\\"b" , scope="x y"'), [{ scheme: 'bearer', params: { realm: 'a"b', scope: 'x y' } }]);
  assert.deepEqual(parseWwwAuthenticate(['Negotiate abc==', 'Basic realm="x"']), [
    { scheme: 'negotiate', params: { token68: 'abc==' } },
    { scheme: 'basic', params: { realm: 'x' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(undefined), []);
});

test('Retry-After: seconds, HTTP date, garbage; backoff is capped with jitter', () => {
  const now = Date.parse('Wed, 25 Nov 2026 10:00:00 GMT');
  assert.equal(parseRetryAfter('60', now), 60_000);
  assert.equal(parseRetryAfter('Wed, 25 Nov 2026 10:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 25 Nov 2026 09:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
  // Decimal seconds are seconds, not a date in 2001; numbers that are not delay-seconds are no date either.
  assert.equal(parseRetryAfter('1.5', now), 1500);
  assert.equal(parseRetryAfter(' 0.25 ', now), 250);
  assert.equal(parseRetryAfter('.5', now), 500);
  assert.equal(parseRetryAfter('2026', now), 2_026_000);
  for (const junk of ['-1', '1e3', '1.2.3', '', '  ']) assert.equal(parseRetryAfter(junk, now), undefined, junk);
  const p = new RetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000, random: () => 1 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10].map((a) => p.delayFor(a)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.equal(new RetryPolicy({ baseDelayMs: 100, random: () => 0 }).delayFor(0), 50);
  assert.equal(p.delayFor(0, 3000), 3000);
  assert.equal(p.delayFor(0, 3_600_000), 5000);
  assert.ok(p.isRetryableStatus(503) && p.isRetryableStatus(429) && p.isRetryableStatus(408) && !p.isRetryableStatus(404) && !p.isRetryableStatus(501));
});

test('transport origins are spelled as URL.origin spells them, so Authorization is sent to the registry', () => {
  assert.equal(new Transport('Registry.Example.com').origin, 'https://registry.example.com');
  assert.equal(new Transport('registry.example.com:443').origin, 'https://registry.example.com');
  assert.equal(new Transport('REG.example.com:5000').origin, 'https://reg.example.com:5000');
  assert.equal(new Transport('LOCALHOST:5000').origin, 'http://localhost:5000');
  assert.equal(new Transport('Reg.Example.com:80', { plainHttp: true }).origin, 'http://reg.example.com');
  assert.equal(new Transport('[::1]:5000').origin, 'http://[::1]:5000');
});

test('redaction of URLs and text', () => {
  assert.equal(
    redactUrl('https://u:p@s3.example/b/k?X-Amz-Signature=abc&digest=sha256:1'),
    'https://s3.example/b/k?X-Amz-Signature=REDACTED&digest=sha256%3A1',
  );
  assert.equal(redactUrl('http://r/v2/x/blobs/uploads/u?_state=SECRET'), 'http://r/v2/x/blobs/uploads/u?_state=REDACTED');
  assert.equal(redactUrl('/relative?token=abc'), '/relative?REDACTED');
  // User-info goes also from what does not parse as an http(s) URL.
  assert.equal(redactUrl('user:pw@host/v2/x?token=abc'), 'host/v2/x?REDACTED');
  assert.equal(redactUrl('https://user:pw@host:99999/x'), 'https://host:99999/x');
  assert.equal(redactUserinfo('https://ci:S3CRET@reg.example.com/v1/'), 'https://ci:***@reg.example.com/v1/');
  assert.equal(redactUserinfo('https://TOKEN@ghcr.io'), 'https://***@ghcr.io');
  assert.equal(redactUserinfo('ci:S3CRET@localhost:5000/x:1'), 'ci:***@localhost:5000/x:1');
  for (const ref of ['alpine:3.20@sha256:abc', 'ghcr.io/o/r@nodigest', 'ghcr.io:5000/o/r:t@bad.d', 'ubuntu@latest']) assert.equal(redactUserinfo(ref), ref);
  const t = redactText('Authorization: Bearer abc.def.ghi and {"token":"xyz","password":"pw"} eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig');
  assert.ok(!/abc\.def|xyz|"pw"|eyJhbGci/.test(t), t);
});

test('error bodies: spec JSON, plain text, HTML; RegistryError codes and redaction', () => {
  const b = parseErrorBody('{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"bad","detail":{"a":1}}]}');
  assert.deepEqual(b.errors, [{ code: 'BLOB_UPLOAD_INVALID', message: 'bad', detail: { a: 1 } }]);
  assert.equal(parseErrorBody('Too Many Requests (HAP429).\n').text, 'Too Many Requests (HAP429).');
  assert.equal(parseErrorBody('<html><body><h1>502 Bad Gateway</h1></body></html>').text, '502 Bad Gateway');
  const e = new RegistryError({ status: 404, method: 'GET', url: 'https://r/v2/x/blobs/uploads/1?_state=tok', body: b });
  assert.equal(e.code, 'NOT_FOUND');
  assert.match(e.message, /GET https:\/\/r\/v2\/x\/blobs\/uploads\/1\?_state=REDACTED: registry answered 404 BLOB_UPLOAD_INVALID: bad/);
  assert.ok(!e.message.includes('tok'));
  assert.ok(e.hasCode('BLOB_UPLOAD_INVALID'));
  assert.equal(new RegistryError({ status: 401, method: 'GET', url: 'https://r/' }).code, 'AUTH_FAILED');
  assert.equal(new RegistryError({ status: 500, method: 'GET', url: 'https://r/' }).code, 'REGISTRY');
});

test('warnings, upload ranges, digest on Locations', () => {
  assert.deepEqual(parseWarnings(['299 - "deprecated: use v2"', '199 - "misc"']), ['deprecated: use v2']);
  assert.deepEqual(parseWarnings('299 registry "a \\"quoted\\" b", 299 - "c"'), ['a "quoted" b', 'c']);
  assert.equal(parseUploadRange('0-1023', 0), 1024);
  assert.equal(parseUploadRange('bytes=0-1023', 0), 1024);
  assert.equal(parseUploadRange('0-0', 0), 0);
  assert.equal(parseUploadRange('0-0', 1), 1);
  assert.equal(parseUploadRange(undefined, 5), undefined);
  assert.equal(parseUploadRange('junk', 5), undefined);
  assert.equal(withDigest(new URL('http://r/u?_state=a'), 'sha256:x').toString(), 'http://r/u?_state=a&digest=sha256%3Ax');
  assert.equal(withDigest(new URL('http://r/u'), 'sha256:x').toString(), 'http://r/u?digest=sha256%3Ax');
});

test('streamed chunks grow to about 8 s of sending at the rate seen, within bounds', () => {
  const MiB = 1 << 20;
  // 64 MiB in 2 s = 32 MiB/s: 256 MiB is about 8 s.
  assert.equal(grownStreamedChunkSize(64 * MiB, 64 * MiB, 2, maxStreamedChunkSize), 256 * MiB);
  // A fast link: capped at the ceiling.
  assert.equal(grownStreamedChunkSize(64 * MiB, 64 * MiB, 0.25, maxStreamedChunkSize), maxStreamedChunkSize);
  assert.equal(grownStreamedChunkSize(64 * MiB, 64 * MiB, 0.25, 100 * MiB), 100 * MiB);
  // A slow link never shrinks the chunk; a short last chunk or no timing tells nothing.
  assert.equal(grownStreamedChunkSize(64 * MiB, 64 * MiB, 60, maxStreamedChunkSize), 64 * MiB);
  assert.equal(grownStreamedChunkSize(64 * MiB, 3 * MiB, 0.01, maxStreamedChunkSize), 64 * MiB);
  assert.equal(grownStreamedChunkSize(64 * MiB, 64 * MiB, 0, maxStreamedChunkSize), 64 * MiB);
});

test('token cache: superset scopes, expiry margin, invalidation, one fetch for concurrent callers', async () => {
  let now = 1_000_000;
  const c = new TokenCache(() => now);
  c.set('h', ['repository:a:pull,push'], { token: 't1', expiresIn: 60 });
  assert.equal(c.get('h', ['repository:a:pull']), 't1');
  assert.equal(c.get('h', ['repository:a:push', 'repository:a:pull']), 't1');
  assert.equal(c.get('h', ['repository:b:pull']), undefined);
  assert.equal(c.get('other', ['repository:a:pull']), undefined);
  now += 55_000; // within the 6 s margin of a 60 s token
  assert.equal(c.get('h', ['repository:a:pull']), undefined);
  c.set('h', ['repository:a:pull'], { token: 't2', expiresIn: 300 });
  c.invalidate('h', 't2');
  assert.equal(c.get('h', ['repository:a:pull']), undefined);
  let fetches = 0;
  const fetch = async (): Promise<{ token: string; expiresIn: number }> => {
    fetches++;
    await new Promise((r) => setTimeout(r, 10));
    return { token: 't3', expiresIn: 300 };
  };
  const got = await Promise.all([1, 2, 3, 4].map(() => c.getOrFetch('h', ['repository:a:pull,push'], fetch)));
  assert.deepEqual(got, ['t3', 't3', 't3', 't3']);
  assert.equal(fetches, 1);
  assert.deepEqual(mergeScopes(['repository:b:push'], ['repository:b:pull', 'repository:a:pull']), ['repository:a:pull', 'repository:b:pull,push']);
});

test('token cache: a token is filed under the scope granted, per token server, and the cache stays bounded', async (t) => {
  const c = new TokenCache(() => 1_000_000);
  const a = tokenCacheKey('h', { realm: 'https://auth.example/token', service: 'reg' });
  c.set(a, ['repository:x:pull,push'], { token: 'reduced', expiresIn: 300, scope: ['repository:x:pull'] });
  assert.equal(c.get(a, ['repository:x:pull']), 'reduced');
  assert.equal(c.get(a, ['repository:x:pull,push']), undefined, 'not sent for the push it was not granted');
  // Another realm or service of the same host is another issuer.
  assert.equal(c.get(tokenCacheKey('h', { realm: 'https://other.example/token', service: 'reg' }), ['repository:x:pull']), undefined);
  assert.equal(c.get(tokenCacheKey('h', { realm: 'https://auth.example/token', service: 'other' }), ['repository:x:pull']), undefined);
  assert.equal(c.get(tokenCacheKey('h2', { realm: 'https://auth.example/token', service: 'reg' }), ['repository:x:pull']), undefined);
  for (let i = 0; i < 150; i++) c.set(a, [`repository:r${i}:pull`], { token: `t${i}`, expiresIn: 300 });
  assert.equal(c.get(a, ['repository:r149:pull']), 't149');
  assert.equal(c.get(a, ['repository:r0:pull']), undefined, 'the oldest went');

  // Through the Authenticator: the token server's `scope` field and the challenge's realm decide.
  const asked: string[] = [];
  const srv = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    asked.push(`${url.pathname} ${url.searchParams.getAll('scope').join(' ')}`);
    const n = asked.length;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify(url.pathname === '/one' ? { token: `T${n}`, expires_in: 300, scope: 'repository:x:pull' } : { token: `T${n}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => srv.close());
  const origin = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const transport = new Transport('registry.example', { plainHttp: true });
  t.after(() => transport.close());
  const auth = new Authenticator({ host: 'registry.example', credentials: async () => undefined, transport });
  const push = ['repository:x:pull,push'];
  assert.equal(await auth.respond(`Bearer realm="${origin}/one",service="reg"`, push, undefined), 'Bearer T1');
  assert.equal(auth.current(['repository:x:pull']), 'Bearer T1');
  assert.equal(auth.current(push), undefined, 'granted pull only');
  assert.equal(await auth.prepare(push), 'Bearer T2', 'asked again rather than sent where it would be refused');
  // A challenge naming another realm: the first server's tokens do not stand in for its.
  assert.equal(await auth.respond(`Bearer realm="${origin}/two",service="reg"`, ['repository:x:pull'], 'Bearer T1'), 'Bearer T3');
  assert.equal(auth.current(push), undefined);
  assert.deepEqual(asked, ['/one repository:x:pull,push', '/one repository:x:pull,push', '/two repository:x:pull']);
});

test('credentials: explicit, environment, auth files, credential helpers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'oci-os-creds-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  await writeFile(join(dir, 'placeholder'), '');
  await import('node:fs/promises').then((fs) => fs.mkdir(bin));
  // A helper that answers for two servers, one with an identity token, and says "not found" otherwise.
  const helper = join(bin, 'docker-credential-test');
  await writeFile(
    helper,
    `#!/bin/sh
read server
case "$server" in
  helped.example) echo '{"ServerURL":"helped.example","Username":"hu","Secret":"hs"}' ;;
  tok.example) echo '{"ServerURL":"tok.example","Username":"<token>","Secret":"refresh"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
  );
  await chmod(helper, 0o755);
  const configDir = join(dir, 'docker');
  await import('node:fs/promises').then((fs) => fs.mkdir(configDir));
  await writeFile(
    join(configDir, 'config.json'),
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hub:hubpw').toString('base64') },
        'plain.example:5000': { username: 'pu', password: 'pp' },
        'https://idt.example': { identitytoken: 'idtok' },
        'store.example': {},
      },
      credHelpers: { 'helped.example': 'test', 'tok.example': 'test' },
      credsStore: 'test',
    }),
  );
  const env = { PATH: `${bin}:${process.env.PATH}`, DOCKER_CONFIG: configDir, HOME: dir };
  assert.deepEqual(await resolveCredentials('docker.io', { env }), { username: 'hub', password: 'hubpw' });
  assert.deepEqual(await resolveCredentials('plain.example:5000', { env }), { username: 'pu', password: 'pp' });
  assert.deepEqual(await resolveCredentials('idt.example', { env }), { identityToken: 'idtok' });
  assert.deepEqual(await resolveCredentials('helped.example', { env }), { username: 'hu', password: 'hs' });
  assert.deepEqual(await resolveCredentials('tok.example', { env }), { identityToken: 'refresh' });
  assert.equal(await resolveCredentials('store.example', { env }), undefined); // credsStore says "not found"
  assert.equal(await resolveCredentials('unknown.example', { env }), undefined);
  assert.deepEqual(await resolveCredentials('docker.io', { env, credentials: { username: 'x', password: 'y' } }), { username: 'x', password: 'y' });
  assert.deepEqual(await resolveCredentials('docker.io', { env: { ...env, OCI_OS_USERNAME: 'e', OCI_OS_PASSWORD: 'f' } }), { username: 'e', password: 'f' });
  assert.notDeepEqual(
    await resolveCredentials('docker.io', { env: { ...env, OCI_OS_USERNAME: '', OCI_OS_PASSWORD: '' } }),
    { username: '', password: '' },
    'empty variables are not credentials',
  );
  assert.equal(await resolveCredentials('docker.io', { env, explicitOnly: true }), undefined);
  // Explicit credentials and OCI_OS_* belong to one registry; any other gets only the auth files.
  const bound = { env: { ...env, OCI_OS_USERNAME: 'e', OCI_OS_PASSWORD: 'f' }, credentials: { username: 'x', password: 'y' }, credentialsHost: 'ghcr.io' };
  assert.deepEqual(await resolveCredentials('GHCR.io', bound), { username: 'x', password: 'y' });
  assert.deepEqual(await resolveCredentials('ghcr.io', { ...bound, credentials: undefined }), { username: 'e', password: 'f' });
  assert.deepEqual(await resolveCredentials('docker.io', bound), { username: 'hub', password: 'hubpw' });
  assert.deepEqual(await resolveCredentials('docker.io', { ...bound, credentials: undefined }), { username: 'hub', password: 'hubpw' });
  assert.equal(await resolveCredentials('unknown.example', bound), undefined);
  assert.equal(await resolveCredentials('unknown.example', { ...bound, explicitOnly: true }), undefined);
  assert.deepEqual(await resolveCredentials('docker.io', { ...bound, credentialsHost: 'index.docker.io' }), { username: 'x', password: 'y' });
  assert.equal(await resolveCredentials('ghcr.io', { ...bound, credentialsHost: false, explicitOnly: true }), undefined);
  // REGISTRY_AUTH_FILE wins over the Docker config.
  const authFile = join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: { 'docker.io': { auth: Buffer.from('podman:pw').toString('base64') } } }));
  assert.deepEqual(await resolveCredentials('docker.io', { env: { ...env, REGISTRY_AUTH_FILE: authFile } }), { username: 'podman', password: 'pw' });
  // A helper that is not installed is a clear AUTH_FAILED, and the message holds no secret.
  await writeFile(join(configDir, 'config.json'), JSON.stringify({ credHelpers: { 'x.example': 'missing' } }));
  await assert.rejects(
    resolveCredentials('x.example', { env }),
    (e: unknown) => isOciError(e, 'AUTH_FAILED') && /docker-credential-missing.*not found on PATH/.test((e as Error).message),
  );
});

test("the transport's Pool is undici's, loaded from where undici defines it", async () => {
  const { createRequire } = await import('node:module');
  const { poolModules, undiciPool } = await import('../../src/registry/undici-pool.js');
  const require = createRequire(import.meta.url);
  // The modules are still where they are looked for: were they moved, every push and pull would quietly load the whole entry again.
  for (const path of Object.values(poolModules)) assert.ok(require.resolve(path));
  const Pool = undiciPool();
  const entry = require('undici') as typeof import('undici');
  assert.equal(Pool, entry.Pool);
  for (const method of ['request', 'stream', 'pipeline', 'upgrade', 'connect'] as const) {
    assert.equal(Pool.prototype[method], entry.Dispatcher.prototype[method], method);
  }
});
