import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { call, errorCode, pushBlob, sha, tempRegistry } from './helpers.js';

type Reg = Awaited<ReturnType<typeof tempRegistry>>;

function hexOf(d: string): string {
  return d.slice('sha256:'.length);
}

describe('registry server: blobs and uploads', () => {
  let reg: Reg;
  before(async () => {
    reg = await tempRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  async function fetchBlob(name: string, digest: string): Promise<string> {
    const a = await call(reg, 'GET', `/v2/${name}/blobs/${digest}`);
    assert.equal(a.status, 200, a.text);
    assert.equal(a.header('docker-content-digest'), digest);
    return a.text;
  }

  it('answers the base endpoint with the API version header', async () => {
    const a = await call(reg, 'GET', '/v2/');
    assert.equal(a.status, 200);
    assert.equal(a.header('docker-distribution-api-version'), 'registry/2.0');
  });

  it('stores a monolithic POST ?digest= upload (201) and serves it with HEAD and GET', async () => {
    const data = 'monolithic blob';
    const digest = sha(data);
    const a = await call(reg, 'POST', `/v2/multi/part/name/blobs/uploads/?digest=${digest}`, { body: data });
    assert.equal(a.status, 201, a.text);
    assert.equal(a.header('location'), `/v2/multi/part/name/blobs/${digest}`);
    assert.equal(a.header('docker-content-digest'), digest);
    const head = await call(reg, 'HEAD', `/v2/multi/part/name/blobs/${digest}`);
    assert.equal(head.status, 200);
    assert.equal(head.header('content-length'), String(data.length));
    assert.equal(head.header('docker-content-digest'), digest);
    assert.equal(await fetchBlob('multi/part/name', digest), data);
    assert.equal(await readFile(join(reg.root, 'blobs', 'sha256', hexOf(digest)), 'utf8'), data);
  });

  it('does not serve a blob to a repository it was not pushed to', async () => {
    const digest = await pushBlob(reg, 'owner', 'owned');
    const a = await call(reg, 'GET', `/v2/stranger/blobs/${digest}`);
    assert.equal(a.status, 404);
    assert.equal(errorCode(a), 'BLOB_UNKNOWN');
    const head = await call(reg, 'HEAD', `/v2/stranger/blobs/${digest}`);
    assert.equal(head.status, 404);
    assert.equal(head.text, '');
  });

  it('stores POST then PUT with the whole body', async () => {
    const data = 'post then put';
    const start = await call(reg, 'POST', '/v2/pp/blobs/uploads/');
    assert.equal(start.status, 202);
    const uuid = start.header('docker-upload-uuid');
    assert.ok(uuid);
    assert.equal(start.header('location'), `/v2/pp/blobs/uploads/${uuid}`);
    assert.equal(start.header('range'), undefined, 'no Range for an empty session');
    const put = await call(reg, 'PUT', `${start.header('location')}?digest=${sha(data)}`, { body: data });
    assert.equal(put.status, 201, put.text);
    assert.equal(await fetchBlob('pp', sha(data)), data);
    assert.equal(existsSync(join(reg.root, 'uploads', uuid!)), false, 'session files removed');
  });

  it('assembles three chunked PATCHes and a final PUT, answering Range after each', async () => {
    const parts = ['first-', 'second-', 'third'];
    const whole = parts.join('');
    const start = await call(reg, 'POST', '/v2/chunked/blobs/uploads/');
    let location = start.header('location')!;
    let offset = 0;
    for (const p of parts) {
      const a = await call(reg, 'PATCH', location, {
        body: p,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + p.length - 1}` },
      });
      assert.equal(a.status, 202, a.text);
      offset += p.length;
      assert.equal(a.header('range'), `0-${offset - 1}`);
      location = a.header('location')!;
    }
    const status = await call(reg, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), `0-${whole.length - 1}`);
    const put = await call(reg, 'PUT', `${location}?digest=${sha(whole)}`);
    assert.equal(put.status, 201, put.text);
    assert.equal(await fetchBlob('chunked', sha(whole)), whole);
  });

  it('refuses an out-of-order chunk with 416 and the Range it has, then accepts the right one', async () => {
    const start = await call(reg, 'POST', '/v2/ooo/blobs/uploads/');
    const loc = start.header('location')!;
    const first = await call(reg, 'PATCH', loc, { body: 'abcd', headers: { 'content-range': '0-3' } });
    assert.equal(first.status, 202);
    const gap = await call(reg, 'PATCH', loc, { body: 'xyz', headers: { 'content-range': '10-12' } });
    assert.equal(gap.status, 416);
    assert.equal(gap.header('range'), '0-3');
    assert.equal(errorCode(gap), 'BLOB_UPLOAD_INVALID');
    const overlap = await call(reg, 'PATCH', loc, { body: 'cd', headers: { 'content-range': '2-3' } });
    assert.equal(overlap.status, 416);
    assert.equal(overlap.header('range'), '0-3');
    const next = await call(reg, 'PATCH', loc, { body: 'ef', headers: { 'content-range': '4-5' } });
    assert.equal(next.status, 202);
    assert.equal(next.header('range'), '0-5');
    const put = await call(reg, 'PUT', `${loc}?digest=${sha('abcdef')}`);
    assert.equal(put.status, 201, put.text);
  });

  it('rolls back a chunk whose length differs from its Content-Range', async () => {
    const start = await call(reg, 'POST', '/v2/short/blobs/uploads/');
    const loc = start.header('location')!;
    const a = await call(reg, 'PATCH', loc, { body: 'abc', headers: { 'content-range': '0-9' } });
    assert.equal(a.status, 400);
    assert.equal(errorCode(a), 'SIZE_INVALID');
    const status = await call(reg, 'GET', loc);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), undefined);
  });

  it('appends streamed PATCHes without Content-Range', async () => {
    const start = await call(reg, 'POST', '/v2/streamed/blobs/uploads/');
    let loc = start.header('location')!;
    for (const p of ['stream-one/', 'stream-two']) {
      const a = await call(reg, 'PATCH', loc, { body: p, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(a.status, 202, a.text);
      loc = a.header('location')!;
    }
    assert.equal((await call(reg, 'GET', loc)).header('range'), `0-${'stream-one/stream-two'.length - 1}`);
    const put = await call(reg, 'PUT', `${loc}?digest=${sha('stream-one/stream-two')}`);
    assert.equal(put.status, 201);
    assert.equal(await fetchBlob('streamed', sha('stream-one/stream-two')), 'stream-one/stream-two');
  });

  it('takes the last chunk in the PUT', async () => {
    const start = await call(reg, 'POST', '/v2/lastput/blobs/uploads/');
    const loc = start.header('location')!;
    await call(reg, 'PATCH', loc, { body: 'head-', headers: { 'content-range': '0-4' } });
    const put = await call(reg, 'PUT', `${loc}?digest=${sha('head-tail')}`, { body: 'tail', headers: { 'content-range': '5-8' } });
    assert.equal(put.status, 201, put.text);
    assert.equal(await fetchBlob('lastput', sha('head-tail')), 'head-tail');
  });

  it('cancels an upload with DELETE; the session is gone afterwards', async () => {
    const start = await call(reg, 'POST', '/v2/cancel/blobs/uploads/');
    const loc = start.header('location')!;
    await call(reg, 'PATCH', loc, { body: 'doomed' });
    const del = await call(reg, 'DELETE', loc);
    assert.equal(del.status, 204);
    const status = await call(reg, 'GET', loc);
    assert.equal(status.status, 404);
    assert.equal(errorCode(status), 'BLOB_UPLOAD_UNKNOWN');
    const patch = await call(reg, 'PATCH', loc, { body: 'more' });
    assert.equal(patch.status, 404);
    assert.equal(existsSync(join(reg.root, 'uploads', start.header('docker-upload-uuid')!)), false);
  });

  it('refuses a wrong digest with DIGEST_INVALID and stores nothing', async () => {
    const data = 'the real content';
    const claimed = sha('something else');
    const openBefore = await readdir(join(reg.root, 'uploads'));
    const mono = await call(reg, 'POST', `/v2/wrong/blobs/uploads/?digest=${claimed}`, { body: data });
    assert.equal(mono.status, 400);
    assert.equal(errorCode(mono), 'DIGEST_INVALID');
    const start = await call(reg, 'POST', '/v2/wrong/blobs/uploads/');
    const put = await call(reg, 'PUT', `${start.header('location')}?digest=${claimed}`, { body: data });
    assert.equal(put.status, 400);
    assert.equal(errorCode(put), 'DIGEST_INVALID');
    for (const d of [claimed, sha(data)]) {
      assert.equal(existsSync(join(reg.root, 'blobs', 'sha256', hexOf(d))), false);
      assert.equal((await call(reg, 'HEAD', `/v2/wrong/blobs/${d}`)).status, 404);
    }
    assert.deepEqual(await readdir(join(reg.root, 'uploads')), openBefore, 'failed sessions are dropped');
    assert.deepEqual(await readdir(join(reg.root, 'tmp')), []);
  });

  it('refuses a malformed digest and a PUT without one', async () => {
    const a = await call(reg, 'HEAD', '/v2/x/blobs/sha256:abc');
    assert.equal(a.status, 400);
    const start = await call(reg, 'POST', '/v2/x/blobs/uploads/');
    const put = await call(reg, 'PUT', start.header('location')!, { body: 'x' });
    assert.equal(put.status, 400);
    assert.equal(errorCode(put), 'DIGEST_INVALID');
  });

  it('mounts a blob from a repository that has it (201) and opens a session when the source lacks it (202)', async () => {
    const digest = await pushBlob(reg, 'source/repo', 'shared layer');
    const mounted = await call(reg, 'POST', `/v2/target/repo/blobs/uploads/?mount=${digest}&from=source/repo`);
    assert.equal(mounted.status, 201, mounted.text);
    assert.equal(mounted.header('location'), `/v2/target/repo/blobs/${digest}`);
    assert.equal(mounted.header('docker-content-digest'), digest);
    assert.equal(await fetchBlob('target/repo', digest), 'shared layer');

    const fallback = await call(reg, 'POST', `/v2/third/blobs/uploads/?mount=${digest}&from=empty/repo`);
    assert.equal(fallback.status, 202);
    assert.match(fallback.header('location')!, /^\/v2\/third\/blobs\/uploads\/[0-9a-f-]{36}$/);
    assert.equal((await call(reg, 'HEAD', `/v2/third/blobs/${digest}`)).status, 404);
    const put = await call(reg, 'PUT', `${fallback.header('location')}?digest=${digest}`, { body: 'shared layer' });
    assert.equal(put.status, 201);
  });

  it('serves single byte ranges with 206 and Content-Range, and 416 beyond the end', async () => {
    const data = '0123456789';
    const digest = await pushBlob(reg, 'ranges', data);
    const cases: Array<[string, string, string]> = [
      ['bytes=2-5', '2345', 'bytes 2-5/10'],
      ['bytes=7-', '789', 'bytes 7-9/10'],
      ['bytes=-3', '789', 'bytes 7-9/10'],
      ['bytes=8-100', '89', 'bytes 8-9/10'],
    ];
    for (const [range, body, contentRange] of cases) {
      const a = await call(reg, 'GET', `/v2/ranges/blobs/${digest}`, { headers: { range } });
      assert.equal(a.status, 206, range);
      assert.equal(a.text, body, range);
      assert.equal(a.header('content-range'), contentRange);
      assert.equal(a.header('content-length'), String(body.length));
    }
    const beyond = await call(reg, 'GET', `/v2/ranges/blobs/${digest}`, { headers: { range: 'bytes=10-12' } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.header('content-range'), 'bytes */10');
  });

  it('deletes a blob link with DELETE', async () => {
    const digest = await pushBlob(reg, 'del', 'delete me');
    const del = await call(reg, 'DELETE', `/v2/del/blobs/${digest}`);
    assert.equal(del.status, 202);
    assert.equal((await call(reg, 'HEAD', `/v2/del/blobs/${digest}`)).status, 404);
    const again = await call(reg, 'DELETE', `/v2/del/blobs/${digest}`);
    assert.equal(again.status, 404);
    assert.equal(errorCode(again), 'BLOB_UNKNOWN');
  });

  it('refuses invalid repository names and upload ids of another repository', async () => {
    for (const name of ['UPPER', 'a//b', 'a/-b', '_x']) {
      const a = await call(reg, 'POST', `/v2/${name}/blobs/uploads/`);
      assert.equal(a.status, 400, name);
      assert.equal(errorCode(a), 'NAME_INVALID', name);
    }
    const start = await call(reg, 'POST', '/v2/mine/blobs/uploads/');
    const stolen = start.header('location')!.replace('/v2/mine/', '/v2/yours/');
    assert.equal((await call(reg, 'GET', stolen)).status, 404);
    assert.equal((await call(reg, 'GET', '/v2/mine/blobs/uploads/..%2F..%2Fblobs')).status, 404);
  });
});
