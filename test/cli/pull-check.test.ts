import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer } from '../../src/server/index.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { buildImage, editConfig } from './image-helpers.js';

test('pull --verify-chunks checks OS image chunks while downloading: a wrong chunk hash fails the pull and leaves no image', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const img = await buildImage(root, { size: 900 * 1024 });
  const good = await runCli(['copy', img.location, `${server.address}/os/good:1`]);
  assert.equal(good.code, 0, good.stderr);
  const pulled = await runCli(['pull', `${server.address}/os/good:1`, '-o', `oci:${join(root, 'ok')}:1`, '--json', '--verify-chunks']);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.deepEqual(
    JSON.parse(pulled.stdout).verifiedPayloads.map((p: { name: string }) => p.name),
    ['system', 'kernel.efi'],
  );

  const badDigest = await editConfig(img.dir, img.digest, (c) => {
    c.payloads[0].chunk_hashes_sha256[5] = c.payloads[0].chunk_hashes_sha256[4];
  });
  const pushed = await runCli(['copy', `${img.location.replace(/:v1$/, '')}@${badDigest}`, `${server.address}/os/bad:1`]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const out = join(root, 'out');
  const r = await runCli(['pull', `${server.address}/os/bad:1`, '-o', `oci:${out}:1`, '--verify-chunks']);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /payload "system": chunk 5 at byte offset 327680 does not match its hash/);
  await assert.rejects(stat(join(out, 'index.json')), 'no index written');
  const blobs = await readdir(join(out, 'blobs', 'sha256')).catch(() => []);
  assert.deepEqual(blobs, [], 'nothing left behind');

  // Without the flag a pull checks digests, sizes, the manifest and the config, as OCI clients do;
  // the chunk hashes are verify's (and extract's) to check.
  const plain = join(root, 'plain');
  const p = await runCli(['pull', `${server.address}/os/bad:1`, '-o', `oci:${plain}:1`, '--json']);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(JSON.parse(p.stdout).verifiedPayloads, undefined);
  const v = await runCli(['verify', `oci:${plain}:1`]);
  assert.equal(v.code, 5, v.stderr);
  assert.match(v.stderr, /payload "system": chunk 5 at byte offset 327680 does not match its hash/);
});
