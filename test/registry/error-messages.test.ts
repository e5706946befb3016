import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer } from '../../src/server/index.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('a registry that stays busy past every retry exits 6 and says how often it was tried', async (t) => {
  let requests = 0;
  const busy = createServer((_req, res) => {
    requests++;
    res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
  });
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.after(() => busy.close());
  const host = `127.0.0.1:${(busy.address() as AddressInfo).port}`;
  const r = await runCli(['inspect', `${host}/x/y:1`, '--retries', '1', '--json']);
  assert.equal(r.code, 6, r.stderr);
  const err = JSON.parse(r.stdout).error;
  assert.equal(err.code, 'RETRIES_EXHAUSTED');
  assert.match(err.message, /registry answered 503 .*\(tried 2 times\)$/);
  assert.ok(requests >= 2, `${requests} requests`);
});

test('TLS to a registry that speaks plain HTTP: one line that says so, and the hint', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const r = await runCli(['inspect', `${server.address}/x/y:1`, '--no-plain-http', '--retries', '0']);
  assert.equal(r.code, 6, r.stderr);
  assert.equal(
    r.stderr,
    `oci-os: error: ${server.address} does not speak TLS (wrong version number)\n  hint: the registry may speak plain HTTP: use --plain-http\n`,
  );
});

test('--ca-file is checked before any connection; OCI_OS_USERNAME without a password is pointed out', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const notPem = join(root, 'not-a-ca.txt');
  await writeFile(notPem, 'hello\n');
  const bad = await runCli(['inspect', `${server.address}/x/y:1`, '--ca-file', notPem]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.equal(bad.stderr, `oci-os: error: the CA file ${notPem} holds no PEM certificate (-----BEGIN CERTIFICATE-----)\n`);
  const missing = await runCli(['inspect', `${server.address}/x/y:1`, '--ca-file', join(root, 'nope.pem')]);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /cannot read the CA file .*nope\.pem: no such file or directory/);

  const r = await runCli(['inspect', `${server.address}/x/y:1`], { env: { OCI_OS_USERNAME: 'alice', OCI_OS_PASSWORD: '' } });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^oci-os: warning: OCI_OS_USERNAME is set but OCI_OS_PASSWORD is empty: no credentials from them are sent\n/);
});
