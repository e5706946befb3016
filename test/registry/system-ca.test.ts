import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { requireTools } from '../helpers/tools.js';

// The system CA bundle is read once per process, so each case runs the CLI in its own process.
test('TLS: a CA in the system bundle ($SSL_CERT_FILE) is trusted without --ca-file, for push and pull', async (t) => {
  if (!requireTools(t, 'docker-registry', 'openssl')) return;
  const reg = await startDockerRegistry({ tls: true });
  t.after(() => reg.stop());
  const dir = await tempDir(t);
  const payload = join(dir, 'system.img');
  await writeFile(payload, pseudoRandom(300_000, 3));
  const empty = join(dir, 'empty.pem');
  await writeFile(empty, '');
  // NODE_EXTRA_CA_CERTS unset: only the system bundle may bring the test CA.
  const env = (bundle: string): NodeJS.ProcessEnv => ({
    SSL_CERT_FILE: bundle,
    NODE_EXTRA_CA_CERTS: undefined,
    OCI_OS_CACHE_DIR: join(dir, 'cache'),
    DOCKER_CONFIG: join(dir, 'docker'),
  });
  const push = (bundle: string) =>
    runCli(['push', `${reg.host}/sys/ca:1`, '-p', `system=${payload}`, '--no-plain-http', '--retries', '0', '--json'], { env: env(bundle) });

  // A system bundle without the CA: refused, so it is the bundle that decides below.
  const refused = await push(empty);
  assert.equal(refused.code, 6, refused.stdout + refused.stderr);

  const pushed = await push(reg.caFile!);
  assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
  const digest = JSON.parse(pushed.stdout).digest as string;
  const pulled = await runCli(['pull', `${reg.host}/sys/ca:1`, '-o', `oci:${join(dir, 'pulled')}:1`, '--no-plain-http', '--retries', '0', '--json'], {
    env: env(reg.caFile!),
  });
  assert.equal(pulled.code, 0, pulled.stdout + pulled.stderr);
  assert.equal(JSON.parse(pulled.stdout).digest, digest);
});
