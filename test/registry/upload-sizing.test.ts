/**
 * Chunk sizing that a registry or a proxy in front of it pushes back on, and
 * registries that answer without making progress: every case ends, either in
 * a complete blob or in one clear error after a bounded number of requests,
 * and leaves no file open.
 */
import assert from 'node:assert/strict';
import { createReadStream, readdirSync, readlinkSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { tempDir } from '../helpers/cli.js';
import { garRules } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';
import { blobFromRegistry, fastClient, MiB, randomBytesStream, registryBehindProxy } from './helpers.js';

const UPLOAD = /\/blobs\/uploads\//;

/** Descriptors of this process open on `file`. */
function openOn(file: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;
}

test('chunk sizes pushed back on, and answers without progress: every upload ends', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const { reg, proxy } = await registryBehindProxy(t);
  const dir = await tempDir(t);
  const requests = (method?: string) =>
    proxy.log.filter((e) => (method ? e.method === method : e.method === 'PATCH' || e.method === 'PUT') && /\/blobs\/uploads\//.test(e.path));

  let seed = 900;
  const file = async (size: number) => {
    const parts: Buffer[] = [];
    for await (const b of randomBytesStream(size, ++seed)) parts.push(b);
    const bytes = Buffer.concat(parts);
    const path = join(dir, `blob-${seed}`);
    await writeFile(path, bytes);
    return { path, size, digest: sha256Digest(bytes) };
  };
  /** Uploads a file, streamed from it (`readAt`) unless `stream`, where chunks are held in memory. */
  const upload = async (f: { path: string; size: number; digest: string }, opts: { chunkSize?: number; stream?: boolean; reopen?: boolean } = {}) => {
    proxy.clearLog();
    const { client } = fastClient({ chunkSize: opts.chunkSize });
    t.after(() => client.close());
    const repo = client.repository(`${proxy.host}/sizing/blob`);
    const r = await repo.pushContent({ mediaType: 'application/octet-stream', digest: f.digest, size: f.size }, createReadStream(f.path), {
      skipExistsCheck: true,
      readAt: opts.stream ? undefined : (start) => createReadStream(f.path, { start }),
      reopen: opts.reopen ? () => createReadStream(f.path) : undefined,
    });
    assert.deepEqual(await blobFromRegistry(reg.url, repo.name, f.digest), { digest: f.digest, size: f.size });
    return r;
  };

  await t.test('a whole blob refused by a proxy body limit: halved until it fits, the rest in chunks of that size', async () => {
    proxy.clearRules();
    proxy.addRule({
      path: UPLOAD,
      times: Infinity,
      when: (r) => (r.method === 'PATCH' || r.method === 'PUT') && (r.contentLength ?? 0) > 65 * MiB,
      action: { type: 'respond', status: 413, body: '<html><body>413 Request Entity Too Large</body></html>' },
    });
    const f = await file(130 * MiB + 5);
    const r = await upload(f);
    const half = Math.floor((130 * MiB + 5) / 2);
    const log = requests().map((e) => `${e.method} ${e.status} ${e.requestBodyBytes}`);
    assert.deepEqual(log.slice(0, 2), [`PUT 413 ${130 * MiB + 5}`, `PATCH 413 ${half}`]);
    const rest = requests().slice(2);
    assert.ok(
      rest.slice(0, -1).every((e) => e.method === 'PATCH' && e.status === 202 && e.requestBodyBytes === Math.floor(half / 2)),
      log.join(', '),
    );
    assert.equal(rest.at(-1)!.method, 'PUT');
    assert.equal(
      rest.reduce((n, e) => n + e.requestBodyBytes, 0),
      130 * MiB + 5,
    );
    assert.equal(r.upload!.chunkSize, Math.floor(half / 2));
  });

  await t.test('"too large" on the final PUT of a held chunk: sent again in smaller chunks', async () => {
    proxy.clearRules();
    proxy.addRule({
      method: 'PUT',
      path: UPLOAD,
      times: Infinity,
      when: (r) => (r.contentLength ?? 0) > MiB,
      action: {
        type: 'respond',
        status: 416,
        body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'exceeds the maximum permissible limit of 1.00MiB' }] },
      },
    });
    const f = await file(MiB + MiB / 2);
    const r = await upload(f, { chunkSize: 2 * MiB, stream: true });
    assert.equal(requests('PUT').filter((e) => e.status === 416).length, 1);
    assert.equal(r.upload!.chunkSize, (MiB + MiB / 2) / 2, 'half of what was refused');
  });

  await t.test('a 416 on the final PUT with nothing gained: retried with backoff until the retries run out, not forever', async () => {
    proxy.clearRules();
    proxy.addRule({ method: 'PUT', path: UPLOAD, times: 50, action: { type: 'respond', status: 416 } });
    const f = await file(MiB / 2);
    await assert.rejects(upload(f, { chunkSize: MiB }), (e: unknown) => isOciError(e, 'RETRIES_EXHAUSTED'));
    assert.ok(requests('PUT').length <= 7, `${requests('PUT').length} PUTs`);
  });

  await t.test('PATCH answered 202 while the registry holds none of it: counted as a failure, not sent again forever', async () => {
    proxy.clearRules();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, times: 50, action: { type: 'respond', status: 202, headers: { range: '0-0' } } });
    const f = await file(3 * MiB);
    await assert.rejects(upload(f, { chunkSize: MiB }), (e: unknown) => isOciError(e, 'RETRIES_EXHAUSTED') && /holds none of them/.test((e as Error).message));
    assert.ok(requests('PATCH').length <= 7, `${requests('PATCH').length} PATCHes`);
  });

  await t.test('"too large" above 4 MiB and "too small" below 5 MiB (ECR behind a proxy): one clear error, no flip-flop', async () => {
    proxy.clearRules();
    proxy.addRule(
      { method: 'PATCH', path: UPLOAD, times: 50, when: (r) => (r.contentLength ?? 0) > 4 * MiB, action: { type: 'respond', status: 413, body: 'too large' } },
      {
        method: 'PATCH',
        path: UPLOAD,
        times: 50,
        when: (r) => (r.contentLength ?? 0) < 5 * MiB,
        action: { type: 'respond', status: 400, body: { errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'LayerPartTooSmallException' }] } },
      },
    );
    const f = await file(20 * MiB);
    await assert.rejects(
      upload(f, { chunkSize: 8 * MiB, stream: true }),
      (e: unknown) => isOciError(e, 'REGISTRY') && /as too large and of \d+ bytes as too small/.test((e as Error).message),
    );
    assert.ok(requests('PATCH').length <= 12, `${requests('PATCH').length} PATCHes`);
  });

  await t.test('a session lost after a stream ended: a blob of what was read stands in only when it is the expected one', async () => {
    proxy.clearRules();
    const f = await file(2 * MiB + MiB / 2);
    await upload(f, { chunkSize: MiB, stream: true });
    // Second PATCH: the session is gone. The source, read from memory, has ended by then (it is read
    // ahead while the first chunks are on the wire), so what it held is hashed and known.
    proxy.addRule({
      method: 'PATCH',
      path: UPLOAD,
      nth: 2,
      action: { type: 'respond', status: 404, body: { errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'blob upload unknown' }] } },
    });
    const bytes = await readFile(f.path);
    async function* pieces() {
      for (let off = 0; off < bytes.length; off += MiB) yield bytes.subarray(off, off + MiB);
    }
    const { client } = fastClient({ chunkSize: MiB });
    t.after(() => client.close());
    const repo = client.repository(`${proxy.host}/sizing/blob`);
    const wrong = sha256Digest(Buffer.from('other content'));
    await assert.rejects(
      repo.pushContent({ mediaType: 'application/octet-stream', digest: wrong, size: f.size }, pieces(), { skipExistsCheck: true }),
      (e: unknown) => isOciError(e, 'DIGEST_MISMATCH'),
    );
  });

  await t.test('a whole-blob fallback that keeps failing closes every file it opened', async () => {
    proxy.clearRules();
    proxy.addRule(...garRules(), { method: 'PUT', path: UPLOAD, times: Infinity, action: { type: 'reset', afterBytes: 100 * 1024 } });
    const f = await file(4 * MiB);
    for (const opts of [{ chunkSize: MiB }, { chunkSize: MiB, stream: true, reopen: true }]) {
      await assert.rejects(upload(f, opts));
      // A stream closes its file asynchronously once destroyed: give it a moment, not forever.
      for (let i = 0; i < 60 && openOn(f.path) > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(openOn(f.path), 0, `files left open (${opts.stream ? 'reopened' : 'read again'} source)`);
    }
  });
});
