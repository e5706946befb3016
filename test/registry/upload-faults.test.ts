import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { ecrRules, garRules, ghcrRules } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';
import { blobFromRegistry, fastClient, MiB, randomBytesStream, randomDigest, registryBehindProxy } from './helpers.js';

const UPLOAD = /\/blobs\/uploads\//;

test('chunked uploads through a fault-injecting proxy to the CNCF registry', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const { reg, proxy } = await registryBehindProxy(t);
  const reset = (): void => {
    proxy.clearRules();
    proxy.clearLog();
    proxy.locationMode = 'proxy';
  };
  let seed = 100;

  /** Uploads `size` pseudo-random bytes as a stream of unknown digest; checks the blob the registry serves. */
  const upload = async (size: number, opts: { chunkSize?: number; known?: boolean; reopen?: boolean; repo?: string } = {}) => {
    const s = ++seed;
    const { client, sleeps } = fastClient({ chunkSize: opts.chunkSize ?? MiB });
    t.after(() => client.close());
    const repo = client.repository(`${proxy.host}/${opts.repo ?? 'faults/blob'}`);
    const want = await randomDigest(size, s);
    const reopen = opts.reopen ? () => randomBytesStream(size, s) : undefined;
    const r = opts.known
      ? await repo.pushContent({ mediaType: 'application/octet-stream', digest: want, size }, randomBytesStream(size, s), { reopen })
      : await repo.uploadStream(randomBytesStream(size, s), { reopen });
    assert.equal(r.digest, want);
    assert.equal(r.size, size);
    assert.deepEqual(await blobFromRegistry(reg.url, repo.name, want), { digest: want, size });
    return { r, sleeps, repo };
  };
  const bodyBytes = (): number => proxy.log.filter((e) => e.method === 'PATCH' || e.method === 'PUT').reduce((n, e) => n + e.requestBodyBytes, 0);

  await t.test('a 17 MiB generated stream goes up in 4 MiB chunks, the last one in the PUT, in bounded memory', async () => {
    reset();
    // Memory bound: the uploader never holds more than two chunks (the one on the wire and the
    // one read ahead, + one source piece) that the registry has not acknowledged.
    const { client } = fastClient({ chunkSize: 4 * MiB });
    t.after(() => client.close());
    let pulled = 0;
    let acked = 0;
    let worst = 0;
    async function* watched(): AsyncGenerator<Buffer> {
      for await (const b of randomBytesStream(17 * MiB, 77)) {
        pulled += b.length;
        worst = Math.max(worst, pulled - acked);
        yield b;
      }
    }
    const w = await client.repository(`${proxy.host}/faults/memory`).uploadStream(watched(), {
      onProgress: (n) => {
        acked = n;
      },
    });
    assert.equal(w.digest, await randomDigest(17 * MiB, 77));
    assert.ok(worst <= 8 * MiB + 256 * 1024, `held ${worst} unacknowledged bytes`);
    assert.ok(worst > 4 * MiB, `the next chunk was read ahead (${worst} bytes held at most)`);
    reset();
    const { r } = await upload(17 * MiB, { chunkSize: 4 * MiB });
    assert.equal(r.upload!.mode, 'chunked');
    const patches = proxy.log.filter((e) => e.method === 'PATCH');
    assert.deepEqual(
      patches.map((e) => e.contentRange),
      ['0-4194303', '4194304-8388607', '8388608-12582911', '12582912-16777215'],
    );
    const put = proxy.log.find((e) => e.method === 'PUT')!;
    assert.equal(put.requestBodyBytes, MiB);
    assert.match(put.query, /digest=sha256%3A|digest=sha256:/);
    assert.equal(bodyBytes(), 17 * MiB);
  });

  await t.test('a connection reset before the registry got any of a chunk: resume re-sends only that chunk', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 3, action: { type: 'reset', afterBytes: 0 } });
    const { r } = await upload(6 * MiB + 123);
    assert.equal(r.upload!.resumes, 1);
    assert.ok(
      proxy.log.some((e) => e.method === 'GET' && UPLOAD.test(e.path)),
      'upload status was asked',
    );
    const extra = bodyBytes() - (6 * MiB + 123);
    assert.ok(extra <= MiB, `re-sent ${extra} bytes, more than one chunk`);
  });

  await t.test('a reset in the middle of a chunk: distribution drops the session, reopen() starts over', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'reset', afterBytes: 300 * 1024 } });
    const { r } = await upload(3 * MiB, { reopen: true });
    assert.equal(r.upload!.restarts, 1);
  });

  await t.test('a reset in the middle of a chunk without reopen(): a clear error, not a corrupt blob', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'reset', afterBytes: 300 * 1024 } });
    await assert.rejects(
      upload(3 * MiB),
      (e: unknown) => isOciError(e, 'REGISTRY') && /dropped the upload session.*cannot be sent again/.test((e as Error).message),
    );
    assert.ok(
      proxy.log.some((e) => e.method === 'DELETE'),
      'the session was cancelled',
    );
  });

  await t.test('503 with Retry-After and 500 on PATCH, 429 on POST, 502 on the final PUT: all recovered', async () => {
    reset();
    proxy.addRule(
      { method: 'POST', path: UPLOAD, action: { type: 'respond', status: 429, headers: { 'retry-after': '7' }, body: 'Too Many Requests' } },
      { method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'respond', status: 503, headers: { 'retry-after': '2' } } },
      { method: 'PATCH', path: UPLOAD, nth: 4, action: { type: 'respond', status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'boom' }] } } },
      { method: 'PUT', path: UPLOAD, action: { type: 'respond', status: 502, body: '<html>bad gateway</html>' } },
    );
    const { r, sleeps } = await upload(3 * MiB + 5);
    assert.ok(sleeps.includes(7000), `Retry-After 7 honoured: ${sleeps.join(',')}`);
    assert.ok(sleeps.includes(2000), `Retry-After 2 honoured: ${sleeps.join(',')}`);
    assert.equal(r.upload!.resumes, 3);
    assert.ok(bodyBytes() - (3 * MiB + 5) <= 3 * MiB, 'each failure re-sent at most its own chunk');
  });

  await t.test('a failure that persists ends in RETRIES_EXHAUSTED naming the host', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, times: Infinity, action: { type: 'respond', status: 503 } });
    await assert.rejects(upload(3 * MiB), (e: unknown) => isOciError(e, 'RETRIES_EXHAUSTED') && (e as Error).message.includes(proxy.host));
  });

  await t.test('GHCR: 416 for chunks over 1 MiB halves the chunk size until they fit', async () => {
    reset();
    proxy.addRule(...ghcrRules(MiB));
    const { r } = await upload(5 * MiB + 7, { chunkSize: 4 * MiB });
    assert.equal(r.upload!.chunkSize, MiB);
    const accepted = proxy.log.filter((e) => e.method === 'PATCH' && e.status === 202);
    assert.ok(accepted.every((e) => e.requestBodyBytes <= MiB));
    assert.equal(proxy.log.filter((e) => e.method === 'PATCH' && e.status === 416).length, 2); // 4 → 2 → 1 MiB
  });

  await t.test('ECR: "too small" 400 grows the chunk to 5 MiB; 201 answers without Range are accepted', async () => {
    reset();
    proxy.addRule(...ecrRules({ dropRange: true }));
    const { r } = await upload(12 * MiB + 1, { chunkSize: MiB });
    assert.equal(r.upload!.chunkSize, 5 * MiB);
    const ok = proxy.log.filter((e) => e.method === 'PATCH' && e.status === 201);
    assert.equal(ok.length, 2);
  });

  await t.test('GAR: PATCH refused → one streamed PUT when the digest is known', async () => {
    reset();
    proxy.addRule(...garRules());
    const { r } = await upload(3 * MiB + 1, { known: true });
    assert.equal(r.upload!.mode, 'monolithic');
    const put = proxy.log.filter((e) => e.method === 'PUT');
    assert.equal(put.length, 1);
    assert.equal(put[0]!.requestBodyBytes, 3 * MiB + 1);
  });

  await t.test('GAR with an unknown digest: hashed in a first pass, uploaded in a second via reopen()', async () => {
    reset();
    proxy.addRule(...garRules());
    const { r } = await upload(2 * MiB + 1, { reopen: true });
    assert.equal(r.upload!.mode, 'monolithic');
  });

  await t.test('GAR with an unknown digest and no reopen(): UNSUPPORTED with a hint', async () => {
    reset();
    proxy.addRule(...garRules());
    await assert.rejects(
      upload(2 * MiB + 1),
      (e: unknown) => isOciError(e, 'UNSUPPORTED') && /refuses chunked uploads/.test((e as Error).message) && !!(e as { hint?: string }).hint,
    );
  });

  await t.test('GAR with a failing PUT: the streamed body is sent again from reopen()', async () => {
    reset();
    proxy.addRule(...garRules(), { method: 'PUT', path: UPLOAD, action: { type: 'respond', status: 503 } });
    const { r } = await upload(2 * MiB + 1, { known: true, reopen: true });
    assert.equal(r.upload!.mode, 'monolithic');
    assert.equal(r.upload!.restarts, 1);
  });

  await t.test('a registry that answers 404 to every upload status request (ECR Public): our own offset is trusted', async () => {
    reset();
    proxy.addRule(
      { method: 'GET', path: UPLOAD, times: Infinity, action: { type: 'respond', status: 404 } },
      { method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'reset', afterBytes: 0 } },
    );
    const { r } = await upload(3 * MiB + 1);
    assert.equal(r.upload!.resumes, 1);
    assert.ok(bodyBytes() - (3 * MiB + 1) <= MiB);
  });

  await t.test('relative Locations are resolved against the request URL', async () => {
    reset();
    proxy.locationMode = 'relative';
    await upload(2 * MiB + 3);
  });

  await t.test('Range headers that lag are resynced with a status request', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, nth: 2, action: { type: 'rewrite', ifStatus: 202, setHeaders: { range: '0-1048575' } } });
    const { r } = await upload(3 * MiB + 3);
    assert.equal(r.upload!.resumes, 0);
    assert.equal(bodyBytes(), 3 * MiB + 3);
  });

  await t.test('abort: the upload session is deleted and ABORTED is thrown', async () => {
    reset();
    const { client } = fastClient({ chunkSize: MiB });
    t.after(() => client.close());
    const repo = client.repository(`${proxy.host}/faults/abort`);
    const ac = new AbortController();
    await assert.rejects(
      repo.uploadStream(randomBytesStream(4 * MiB, 9), {
        signal: ac.signal,
        onProgress: (n) => {
          if (n >= MiB) ac.abort();
        },
      }),
      (e: unknown) => isOciError(e, 'ABORTED'),
    );
    assert.ok(
      proxy.log.some((e) => e.method === 'DELETE' && UPLOAD.test(e.path)),
      'DELETE sent',
    );
  });
});
