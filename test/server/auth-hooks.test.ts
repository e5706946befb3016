import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { parseListenAddress, type RequestLogEntry, startRegistryServer } from '../../src/server/index.js';
import { call, errorCode, pushBlob, sha, tempRegistry } from './helpers.js';

function basic(user: string, pass: string): { authorization: string } {
  return { authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

/** Sends a PATCH announcing `total` bytes, writes `sent` of them, then drops the connection. */
async function interruptedPatch(port: number, path: string, total: number, sent: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`PATCH ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`);
      s.write(Buffer.alloc(sent, 7), () =>
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 50),
      );
    });
    s.on('error', reject);
  });
}

describe('registry server: auth, hooks, logging, resume', () => {
  it('requires Basic credentials from an htpasswd file of bcrypt hashes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oci-os-htpasswd-'));
    const htpasswd = join(dir, 'htpasswd');
    const yHash = bcrypt.hashSync('hunter2', 4).replace(/^\$2b\$/, '$2y$');
    await writeFile(htpasswd, `alice:${bcrypt.hashSync('s3cret', 4)}\nbob:${yHash}\nmallory:{SHA}notbcrypt=\n`);
    const logs: RequestLogEntry[] = [];
    const reg = await tempRegistry({ htpasswdFile: htpasswd, log: (e) => logs.push(e) });
    try {
      const anonymous = await call(reg, 'GET', '/v2/');
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.header('www-authenticate'), 'Basic realm="oci-os"');
      assert.equal(errorCode(anonymous), 'UNAUTHORIZED');
      const wrong = await call(reg, 'GET', '/v2/', { headers: basic('alice', 'wrong') });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.header('www-authenticate'), 'Basic realm="oci-os"');
      assert.equal((await call(reg, 'GET', '/v2/', { headers: basic('nobody', 's3cret') })).status, 401);
      assert.equal((await call(reg, 'GET', '/v2/', { headers: basic('mallory', 'x') })).status, 401);
      assert.equal((await call(reg, 'GET', '/v2/', { headers: basic('alice', 's3cret') })).status, 200);
      assert.equal((await call(reg, 'GET', '/v2/', { headers: basic('bob', 'hunter2') })).status, 200);
      const digest = sha('authed');
      const unauth = await call(reg, 'POST', `/v2/p/blobs/uploads/?digest=${digest}`, { body: 'authed' });
      assert.equal(unauth.status, 401);
      const push = await call(reg, 'POST', `/v2/p/blobs/uploads/?digest=${digest}`, { body: 'authed', headers: basic('alice', 's3cret') });
      assert.equal(push.status, 201);
      assert.equal((await call(reg, 'HEAD', `/v2/p/blobs/${digest}`, { headers: basic('alice', 'wrong') })).status, 401);
      assert.ok(logs.length >= 9);
      const logged = JSON.stringify(logs);
      assert.ok(!logged.includes('s3cret') && !logged.includes(basic('alice', 's3cret').authorization.slice(6)));
      assert.deepEqual(Object.keys(logs[0]!).sort(), ['durationMs', 'method', 'path', 'status']);
      assert.equal(logs[0]!.status, 401);
    } finally {
      await reg.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails to start with a readable error when the htpasswd file is missing', async () => {
    await assert.rejects(
      startRegistryServer({ root: await mkdtemp(join(tmpdir(), 'oci-os-registry-')), htpasswdFile: '/nonexistent/htpasswd' }),
      (err: any) => err.code === 'INPUT_UNREADABLE' && /nonexistent/.test(err.message),
    );
  });

  it('lets a hook answer requests itself: a 503 and a connection reset', async () => {
    let patches = 0;
    let heads = 0;
    const reg = await tempRegistry({
      hooks: {
        onRequest(req, res) {
          if (req.method === 'PATCH' && ++patches === 1) {
            res.writeHead(503, { 'Retry-After': '0' }).end();
            return true;
          }
          if (req.method === 'HEAD' && ++heads === 1) {
            req.socket.destroy();
            return true;
          }
          return false;
        },
      },
    });
    try {
      const start = await call(reg, 'POST', '/v2/flaky/blobs/uploads/');
      const loc = start.header('location')!;
      const first = await call(reg, 'PATCH', loc, { body: 'abc', headers: { 'content-range': '0-2' } });
      assert.equal(first.status, 503);
      const second = await call(reg, 'PATCH', loc, { body: 'abc', headers: { 'content-range': '0-2' } });
      assert.equal(second.status, 202);
      assert.equal((await call(reg, 'PUT', `${loc}?digest=${sha('abc')}`)).status, 201);
      await assert.rejects(call(reg, 'HEAD', `/v2/flaky/blobs/${sha('abc')}`));
      assert.equal((await call(reg, 'HEAD', `/v2/flaky/blobs/${sha('abc')}`)).status, 200);
    } finally {
      await reg.stop();
    }
  });

  it('keeps the bytes of an interrupted PATCH so the client can resume from the reported Range', async () => {
    const reg = await tempRegistry();
    try {
      const whole = Buffer.alloc(100_000, 7);
      const start = await call(reg, 'POST', '/v2/resume/blobs/uploads/');
      const loc = start.header('location')!;
      await interruptedPatch(reg.port, loc, whole.length, 40_000);
      const status = await call(reg, 'GET', loc);
      assert.equal(status.status, 204);
      const m = /^0-(\d+)$/.exec(status.header('range') ?? '');
      assert.ok(m, `Range ${status.header('range')}`);
      const have = Number(m[1]) + 1;
      assert.ok(have > 0 && have <= 40_000, `have ${have}`);
      const rest = await call(reg, 'PATCH', loc, {
        body: whole.subarray(have),
        headers: { 'content-range': `${have}-${whole.length - 1}` },
      });
      assert.equal(rest.status, 202, rest.text);
      const put = await call(reg, 'PUT', `${loc}?digest=${sha(whole)}`);
      assert.equal(put.status, 201, put.text);
    } finally {
      await reg.stop();
    }
  });

  it('cuts off a stalled PATCH when the client asks for the upload status, reporting the bytes that arrived', async () => {
    const reg = await tempRegistry();
    try {
      const start = await call(reg, 'POST', '/v2/stalled/blobs/uploads/');
      const loc = start.header('location')!;
      const stalled = connect(reg.port, '127.0.0.1');
      const closedByServer = new Promise<void>((resolve) => stalled.on('close', () => resolve()));
      stalled.on('error', () => undefined);
      stalled.write(`PATCH ${loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n`);
      await new Promise<void>((resolve) => stalled.write(Buffer.alloc(30_000, 1), () => resolve()));
      await new Promise((r) => setTimeout(r, 100));
      const status = await call(reg, 'GET', loc);
      assert.equal(status.status, 204);
      const m = /^0-(\d+)$/.exec(status.header('range') ?? '');
      assert.ok(m, `Range ${status.header('range')}`);
      const have = Number(m[1]) + 1;
      assert.ok(have > 0 && have <= 30_000, `have ${have}`);
      await closedByServer;
      const rest = Buffer.alloc(100_000 - have, 1);
      const patch = await call(reg, 'PATCH', loc, { body: rest, headers: { 'content-range': `${have}-99999` } });
      assert.equal(patch.status, 202, patch.text);
      assert.equal((await call(reg, 'PUT', `${loc}?digest=${sha(Buffer.alloc(100_000, 1))}`)).status, 201);
    } finally {
      await reg.stop();
    }
  });

  it('resumes an upload session after a restart on the same root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'oci-os-registry-'));
    try {
      const first = await startRegistryServer({ root });
      const start = await call(first, 'POST', '/v2/restart/blobs/uploads/');
      const loc = start.header('location')!;
      assert.equal((await call(first, 'PATCH', loc, { body: 'before ', headers: { 'content-range': '0-6' } })).status, 202);
      await first.close();
      const second = await startRegistryServer({ root });
      try {
        const status = await call(second, 'GET', loc);
        assert.equal(status.status, 204);
        assert.equal(status.header('range'), '0-6');
        const put = await call(second, 'PUT', `${loc}?digest=${sha('before after')}`, { body: 'after', headers: { 'content-range': '7-11' } });
        assert.equal(put.status, 201, put.text);
        assert.equal((await call(second, 'GET', `/v2/restart/blobs/${sha('before after')}`)).text, 'before after');
      } finally {
        await second.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('advertises OCI-Chunk-Min-Length and enforces chunk limits', async () => {
    const reg = await tempRegistry({ chunkMinLength: 4, chunkMaxLength: 8 });
    try {
      const start = await call(reg, 'POST', '/v2/limits/blobs/uploads/');
      assert.equal(start.header('oci-chunk-min-length'), '4');
      const loc = start.header('location')!;
      const big = await call(reg, 'PATCH', loc, { body: '123456789', headers: { 'content-range': '0-8' } });
      assert.equal(big.status, 413);
      assert.equal((await call(reg, 'PATCH', loc, { body: '1234', headers: { 'content-range': '0-3' } })).status, 202);
      assert.equal((await call(reg, 'PATCH', loc, { body: '56', headers: { 'content-range': '4-5' } })).status, 202);
      const afterShort = await call(reg, 'PATCH', loc, { body: '7890', headers: { 'content-range': '6-9' } });
      assert.equal(afterShort.status, 400);
      assert.equal(errorCode(afterShort), 'SIZE_INVALID');
      assert.equal((await call(reg, 'PUT', `${loc}?digest=${sha('123456')}`)).status, 201);
      assert.equal((await pushBlob(reg, 'limits', 'monolithic is not chunked')).length, 71);
    } finally {
      await reg.stop();
    }
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(parseListenAddress('[::1]:5001'), { host: '::1', port: 5001 });
    assert.deepEqual(parseListenAddress(':5002'), { host: '127.0.0.1', port: 5002 });
    assert.throws(
      () => parseListenAddress('localhost'),
      (e: any) => e.code === 'INVALID_ARGUMENT',
    );
    assert.throws(
      () => parseListenAddress('h:70000'),
      (e: any) => e.code === 'INVALID_ARGUMENT',
    );
  });
});
