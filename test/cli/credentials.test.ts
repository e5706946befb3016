import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { credentialsRegistry } from '../../cli/registry-flags.js';
import { isOciError } from '../../src/errors.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';
import { buildImage, KiB } from './image-helpers.js';

test('explicit credentials are for the registry a command writes to, else the one it reads from', () => {
  assert.equal(credentialsRegistry({ writes: 'myreg.example.com/x:1', reads: ['docker.io/library/x:1'] }), 'myreg.example.com');
  assert.equal(credentialsRegistry({ writes: 'oci:out:1', reads: ['ghcr.io/o/x:1'] }), 'ghcr.io');
  assert.equal(credentialsRegistry({ writes: 'oci-archive:a.tar', reads: ['alpine'] }), 'docker.io');
  assert.equal(credentialsRegistry({ reads: ['localhost:5000/x', undefined] }), 'localhost:5000');
  assert.equal(credentialsRegistry({ writes: 'ghcr.io/a', reads: ['ghcr.io/b', 'docker.io/c'] }), 'ghcr.io');
  assert.equal(credentialsRegistry({ reads: ['oci:dir'] }), false);
  // A destination that does not parse binds them to nothing: they must not go to the source meanwhile.
  assert.equal(credentialsRegistry({ writes: 'Bad Ref!', reads: ['ghcr.io/o/x'] }), false);
  // Several sources and no registry destination: ambiguous.
  assert.equal(credentialsRegistry({ writes: 'oci:out', reads: ['a.example/x', 'b.example/y'] }), false);
  assert.throws(
    () => credentialsRegistry({ writes: 'oci:out', reads: ['a.example/x', 'b.example/y'] }, true),
    (e: unknown) => isOciError(e, 'USAGE') && /one registry/.test((e as Error).message),
  );
});

test("copy -u/--password-stdin and OCI_OS_* send the password to the destination only, never to the source's token server", async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const root = await tempDir(t);
  const env = { HOME: root, DOCKER_CONFIG: join(root, 'docker'), REGISTRY_AUTH_FILE: '', OCI_OS_USERNAME: '', OCI_OS_PASSWORD: '' };
  // Source: an open registry behind a proxy that asks for anonymous Bearer tokens from a token server we watch.
  const realmSaw: Array<string | undefined> = [];
  const realm = createServer((req, res) => {
    realmSaw.push(req.headers.authorization);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"anonymous","expires_in":300}');
  });
  await new Promise<void>((r) => realm.listen(0, '127.0.0.1', () => r()));
  t.after(() => realm.close());
  const open = await startDockerRegistry();
  t.after(() => open.stop());
  const src = await startFaultProxy(open.url, { otherListener: false });
  t.after(() => src.stop());
  src.addRule({
    listener: 'main',
    times: Infinity,
    when: (r) => r.headers.authorization === undefined,
    action: {
      type: 'respond',
      status: 401,
      headers: { 'www-authenticate': `Bearer realm="http://127.0.0.1:${(realm.address() as AddressInfo).port}/token",service="src"` },
    },
  });
  // Destination: Basic auth (htpasswd).
  const dst = await startDockerRegistry({ auth: 'htpasswd' });
  t.after(() => dst.stop());

  const img = await buildImage(root, { size: 40 * KiB });
  const seed = await runCli(['copy', img.location, `${open.host}/public/img:1`], { env });
  assert.equal(seed.code, 0, seed.stderr);

  const flags = await runCli(['copy', `${src.host}/public/img:1`, `${dst.host}/mine/img:1`, '-u', dst.username!, '--password-stdin', '--retries', '0'], {
    env,
    input: `${dst.password}\n`,
  });
  assert.equal(flags.code, 0, flags.stderr);
  assert.equal(flags.stdout.trim(), img.digest);
  const vars = await runCli(['copy', `${src.host}/public/img:1`, `${dst.host}/mine/img:2`, '--retries', '0'], {
    env: { ...env, OCI_OS_USERNAME: dst.username!, OCI_OS_PASSWORD: dst.password! },
  });
  assert.equal(vars.code, 0, vars.stderr);
  assert.ok(realmSaw.length >= 2, 'the source asked for tokens');
  assert.deepEqual(
    realmSaw.filter((a) => a !== undefined),
    [],
    "no credentials went to the source's token server",
  );

  // A single-registry command still uses them for its one registry.
  const inspect = await runCli(['inspect', `${dst.host}/mine/img:1`, '-u', dst.username!, '--password-stdin', '--json'], { env, input: dst.password! });
  assert.equal(inspect.code, 0, inspect.stderr);
  const help = await runCli(['copy', '--help'], { env });
  assert.match(help.stdout.replace(/\s+/g, ' '), /go only to the registry the command writes to/);
});

test('a password typed into a login target or a reference is not echoed', async (t) => {
  const root = await tempDir(t);
  const env = { HOME: root, DOCKER_CONFIG: join(root, 'docker'), REGISTRY_AUTH_FILE: '' };
  const login = await runCli(['login', 'https://ci:S3CRET@reg.example.com', '-u', 'ci', '--password-stdin'], { env, input: 'pw\n' });
  assert.equal(login.code, 2, login.stderr);
  assert.match(login.stderr, /ci:\*\*\*@reg\.example\.com/);
  assert.doesNotMatch(login.stdout + login.stderr, /S3CRET/);
  const inspect = await runCli(['inspect', 'ci:S3CRET@reg.example.com/x:1'], { env });
  assert.equal(inspect.code, 2, inspect.stderr);
  assert.match(inspect.stderr, /ci:\*\*\*@reg\.example\.com\/x:1/);
  assert.doesNotMatch(inspect.stdout + inspect.stderr, /S3CRET/);
});
