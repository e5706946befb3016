import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { tempDir } from '../helpers/cli.js';
import { garRules, ghcrRules } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';
import { blobFromRegistry, fastClient, MiB, randomBytesStream, registryBehindProxy } from './helpers.js';

const UPLOAD = /\/blobs\/uploads\//;

test('chunks streamed from a file that can be read again, through a fault-injecting proxy to the CNCF registry', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const { reg, proxy } = await registryBehindProxy(t);
  const dir = await tempDir(t);
  const reset = (): void => {
    proxy.clearRules();
    proxy.clearLog();
  };
  const bodyBytes = (): number => proxy.log.filter((e) => e.method === 'PATCH' || e.method === 'PUT').reduce((n, e) => n + e.requestBodyBytes, 0);

  let seed = 500;
  /** Writes `size` pseudo-random bytes to a file and uploads it with readAt; checks what the registry serves. */
  const upload = async (size: number, opts: { chunkSize?: number; lie?: 'digest' | 'size'; again?: boolean } = {}) => {
    if (!opts.again) ++seed;
    const file = join(dir, `blob-${seed}`);
    const parts: Buffer[] = [];
    for await (const b of randomBytesStream(size, seed)) parts.push(b);
    const bytes = Buffer.concat(parts);
    await writeFile(file, bytes);
    const digest = opts.lie === 'digest' ? sha256Digest(Buffer.from('something else')) : sha256Digest(bytes);
    const declared = opts.lie === 'size' ? size + 10 : size;
    const { client } = fastClient({ chunkSize: opts.chunkSize });
    t.after(() => client.close());
    const repo = client.repository(`${proxy.host}/replay/blob`);
    let opened = 0;
    const r = await repo.pushContent({ mediaType: 'application/octet-stream', digest, size: declared }, createReadStream(file), {
      skipExistsCheck: opts.again,
      readAt: (start) => {
        opened++;
        return createReadStream(file, { start });
      },
    });
    assert.equal(r.digest, digest);
    assert.deepEqual(await blobFromRegistry(reg.url, repo.name, digest), { digest, size });
    return { r, opened };
  };

  await t.test('chunks are not held: the whole blob in one request by default, each PATCH carries Content-Range and Content-Length', async () => {
    reset();
    const { r, opened } = await upload(5 * MiB + 3);
    assert.equal(r.upload!.chunkSize, 1024 * MiB);
    assert.equal(opened, 1, 'one read of the file');
    const put = proxy.log.find((e) => e.method === 'PUT')!;
    assert.equal(put.requestBodyBytes, 5 * MiB + 3, 'a blob smaller than a chunk goes in the final PUT');
    reset();
    await upload(9 * MiB + 3, { chunkSize: MiB });
    const patches = proxy.log.filter((e) => e.method === 'PATCH');
    assert.deepEqual(
      patches.slice(0, 2).map((e) => e.contentRange),
      ['0-1048575', '1048576-2097151'],
    );
    assert.equal(patches.length, 9);
    assert.equal(bodyBytes(), 9 * MiB + 3);
    // HEAD ends its connection (undici closes after HEAD); every other request reuses one.
    assert.ok(proxy.connections <= 3, `${proxy.connections} connections for ${proxy.log.length} requests`);
  });

  await t.test('a blob of up to 1 GiB goes in one request: POST, then PUT ?digest= with every byte', async () => {
    reset();
    const { r } = await upload(130 * MiB + 5);
    const bodies = proxy.log.filter((e) => e.method === 'PATCH' || e.method === 'PUT').map((e) => [e.method, e.requestBodyBytes, e.contentRange]);
    assert.deepEqual(bodies, [['PUT', 130 * MiB + 5, `0-${130 * MiB + 4}`]]);
    assert.equal(r.upload!.resentBytes, 0);
  });

  await t.test('a large first request that breaks: on from where the registry stands, in 64 MiB requests', async () => {
    reset();
    proxy.addRule({ method: 'PUT', path: UPLOAD, action: { type: 'reset', afterBytes: 0 } });
    const { r } = await upload(130 * MiB + 5);
    assert.equal(r.upload!.chunkSize, 64 * MiB);
    const bodies = proxy.log.filter((e) => (e.method === 'PATCH' || e.method === 'PUT') && e.status !== 0).map((e) => e.requestBodyBytes);
    assert.deepEqual(bodies, [64 * MiB, 64 * MiB, 2 * MiB + 5]);
  });

  await t.test('a reset before the registry got a chunk: the file is read again from the offset the registry holds', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'reset', afterBytes: 0 } });
    const { r, opened } = await upload(5 * MiB + 1, { chunkSize: MiB });
    assert.equal(r.upload!.resumes, 1);
    assert.equal(opened, 2, 'read again once, from the held offset');
    assert.ok(bodyBytes() - (5 * MiB + 1) <= MiB, 'at most one chunk sent again');
  });

  await t.test('a reset in the middle of a chunk (distribution drops the session): started over without a reopen()', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'reset', afterBytes: 300 * 1024 } });
    const { r } = await upload(3 * MiB, { chunkSize: MiB });
    assert.equal(r.upload!.restarts, 1);
  });

  await t.test('a session lost half-way through a blob that meanwhile exists: done, without reading the rest', async () => {
    reset();
    await upload(3 * MiB, { chunkSize: MiB });
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'reset', afterBytes: 300 * 1024 } });
    const { r } = await upload(3 * MiB, { chunkSize: MiB, again: true });
    assert.equal(r.upload!.restarts, 0);
    assert.ok(
      proxy.log.some((e) => e.method === 'HEAD'),
      'the registry was asked whether it has the blob',
    );
  });

  await t.test('503, then a 502 on the final PUT: recovered', async () => {
    reset();
    proxy.addRule(
      { method: 'PATCH', path: UPLOAD, nth: 1, action: { type: 'respond', status: 503, headers: { 'retry-after': '1' } } },
      { method: 'PUT', path: UPLOAD, action: { type: 'respond', status: 502 } },
    );
    const { r } = await upload(3 * MiB + 5, { chunkSize: MiB });
    assert.equal(r.upload!.resumes, 2);
  });

  await t.test('GHCR: too large streamed chunks are halved until they fit', async () => {
    reset();
    proxy.addRule(...ghcrRules(MiB));
    const { r } = await upload(5 * MiB + 7, { chunkSize: 4 * MiB });
    assert.equal(r.upload!.chunkSize, MiB);
  });

  await t.test('GAR: PATCH refused → one PUT of the whole file', async () => {
    reset();
    proxy.addRule(...garRules());
    const { r } = await upload(2 * MiB + 1, { chunkSize: MiB });
    assert.equal(r.upload!.mode, 'monolithic');
    assert.equal(proxy.log.filter((e) => e.method === 'PUT').at(-1)!.requestBodyBytes, 2 * MiB + 1);
  });

  await t.test('content that does not match its digest is refused before anything is committed', async () => {
    reset();
    await assert.rejects(upload(MiB + 1, { lie: 'digest' }), (e: unknown) => isOciError(e, 'DIGEST_MISMATCH'));
  });

  await t.test('a file shorter than its descriptor says: SIZE_MISMATCH, not a network error', async () => {
    reset();
    await assert.rejects(
      upload(MiB + 1, { lie: 'size', chunkSize: MiB }),
      (e: unknown) => isOciError(e, 'SIZE_MISMATCH') && /ended after/.test((e as Error).message),
    );
  });
});
