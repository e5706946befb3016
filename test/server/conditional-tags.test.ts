/**
 * Conditional tag writes (If-Match / If-None-Match on a manifest PUT), which
 * let clients that merge into a tag, such as `push --index-tag` from parallel
 * architecture jobs, see a concurrent writer instead of overwriting it.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';
import { call, errorCode, imageManifest, pushBlob, pushManifest, tempRegistry } from './helpers.js';

const manifestType = 'application/vnd.oci.image.manifest.v1+json';

test('a tag write with If-Match succeeds only while the tag holds that ETag; If-None-Match: * only while it is new', async (t) => {
  const reg = await tempRegistry();
  t.after(() => reg.stop());
  const config = { digest: await pushBlob(reg, 'cond', '{}'), size: 2 };
  const put = (n: number, headers: Record<string, string>) =>
    call(reg, 'PUT', '/v2/cond/manifests/v1', {
      body: JSON.stringify(imageManifest(config, [], { annotations: { n: String(n) } })),
      headers: { 'content-type': manifestType, ...headers },
    });

  assert.equal((await put(1, { 'if-none-match': '*' })).status, 201, 'a new tag');
  const refused = await put(2, { 'if-none-match': '*' });
  assert.equal(refused.status, 412, refused.text);
  assert.equal(errorCode(refused), 'DENIED');

  const etag = (await call(reg, 'GET', '/v2/cond/manifests/v1', { headers: { accept: manifestType } })).header('etag')!;
  assert.match(etag, /^"sha256:[0-9a-f]{64}"$/);
  assert.equal((await put(3, { 'if-match': etag })).status, 201, 'the tag still holds what was read');
  const stale = await put(4, { 'if-match': etag });
  assert.equal(stale.status, 412, 'another write came between');
  const now = await call(reg, 'GET', '/v2/cond/manifests/v1', { headers: { accept: manifestType } });
  assert.equal(JSON.parse(now.text).annotations.n, '3', 'a refused write changes nothing');
  assert.equal((await put(5, { 'if-match': '*' })).status, 201, '* matches any current manifest');
  assert.equal((await pushManifest(reg, 'cond', 'v2', imageManifest(config, []))).answer.status, 201, 'unconditional writes are unchanged');
});

test('parallel push --index-tag to the built-in registry merges through If-Match and ends with every architecture', async (t) => {
  const reg = await tempRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);
  const host = new URL(reg.url).host;
  const variants = ['x86_64', 'aarch64', 'riscv64'];
  for (const [i, v] of variants.entries()) {
    await mkdir(join(root, v));
    await writeFile(join(root, v, 'system.img'), pseudoRandom(30_000, i + 1));
  }
  const results = await Promise.all(
    variants.map((v) =>
      runCli(
        [
          'push',
          `${host}/os/cond:1.0-${v}`,
          '-p',
          `system=${join(root, v, 'system.img')}`,
          '--variant',
          v,
          '--product-id',
          'myos',
          '--product-version',
          '1.0',
          '--index-tag',
          '1.0',
          '--json',
        ],
        { env: { OCI_OS_CACHE_DIR: join(root, 'cache') } },
      ),
    ),
  );
  const reports = results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { digest: string; index: { conditional: boolean } };
  });
  // Only the job that created the tag (with If-None-Match: *) wrote without an ETag to match.
  assert.ok(reports.filter((j) => !j.index.conditional).length <= 1, JSON.stringify(reports.map((j) => j.index)));
  const digests = reports.map((j) => j.digest);
  const index = await call(reg, 'GET', '/v2/os/cond/manifests/1.0', { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  assert.equal(index.status, 200);
  assert.deepEqual(
    JSON.parse(index.text)
      .manifests.map((m: { digest: string }) => m.digest)
      .sort(),
    [...digests].sort(),
  );
});
