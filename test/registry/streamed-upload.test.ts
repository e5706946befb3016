import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requireTools } from '../helpers/tools.js';
import { blobFromRegistry, fastClient, MiB, randomBytesStream, randomDigest, registryBehindProxy } from './helpers.js';

const UPLOAD = /\/blobs\/uploads\//;

test('a produced blob that can be produced again goes up in one streamed PATCH, resumably', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const { reg, proxy } = await registryBehindProxy(t);
  const reset = (): void => {
    proxy.clearRules();
    proxy.clearLog();
  };
  let seed = 500;

  /** Uploads `size` pseudo-random bytes (unknown digest, reopen() given, no chunk size chosen). */
  const upload = async (size: number) => {
    const s = ++seed;
    const { client } = fastClient();
    t.after(() => client.close());
    const repo = client.repository(`${proxy.host}/streamed/blob`);
    const want = await randomDigest(size, s);
    let opened = 1;
    let pulled = 0;
    let worst = 0;
    const counted = async function* (): AsyncGenerator<Buffer> {
      for await (const b of randomBytesStream(size, s)) {
        pulled += b.length;
        worst = Math.max(worst, pulled);
        yield b;
      }
    };
    const r = await repo.uploadStream(counted(), {
      reopen: () => {
        opened++;
        pulled = 0;
        return counted();
      },
    });
    assert.equal(r.digest, want);
    assert.equal(r.size, size);
    assert.deepEqual(await blobFromRegistry(reg.url, repo.name, want), { digest: want, size });
    return { r, opened };
  };
  const requests = () => proxy.log.filter((e) => UPLOAD.test(e.path) && e.method !== 'POST' && e.method !== 'GET');

  await t.test('POST, one PATCH of unknown length with every byte, an empty PUT ?digest=', async () => {
    reset();
    const { r, opened } = await upload(40 * MiB + 3);
    const log = requests().map((e) => [e.method, e.status, e.requestBodyBytes, e.contentLength, e.contentRange]);
    assert.deepEqual(log, [
      ['PATCH', 202, 40 * MiB + 3, undefined, undefined],
      ['PUT', 201, 0, 0, undefined],
    ]);
    assert.equal(opened, 1);
    assert.equal(r.upload!.resentBytes, 0);
    assert.equal(r.upload!.chunks, 1);
  });

  await t.test('a PATCH cut half-way: the source is produced again, and the upload completes', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, action: { type: 'reset', afterBytes: 5 * MiB } });
    const { r, opened } = await upload(12 * MiB);
    assert.equal(opened, 2, 'produced once more');
    // distribution drops a session after a partial PATCH: started over; a registry that keeps the bytes is resumed.
    assert.equal(r.upload!.resumes + r.upload!.restarts >= 1, true);
  });

  await t.test('a 503 to the PATCH: asked where the registry stands, then on from there', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, action: { type: 'respond', status: 503 } });
    const { r, opened } = await upload(3 * MiB);
    assert.equal(r.upload!.resumes, 1);
    assert.equal(opened, 2);
    assert.equal(requests().filter((e) => e.method === 'PATCH' && e.status === 202).length, 1);
  });

  await t.test('a registry that wants a Content-Length (411): chunks of known length instead', async () => {
    reset();
    proxy.addRule({ method: 'PATCH', path: UPLOAD, when: (q) => q.contentLength === undefined, times: Infinity, action: { type: 'respond', status: 411 } });
    const { r } = await upload(20 * MiB + 1);
    const patches = requests().filter((e) => e.method === 'PATCH' && e.status === 202);
    assert.ok(patches.length >= 2, `${patches.length} chunked PATCHes`);
    assert.ok(patches.every((e) => e.contentLength !== undefined && e.contentRange !== undefined));
    assert.equal(r.upload!.mode, 'chunked');
  });
});
