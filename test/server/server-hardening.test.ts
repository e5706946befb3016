import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { call, errorCode, imageManifest, pushBlob, pushManifest, sha, tempRegistry } from './helpers.js';

function basic(user: string, pass: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

/** An htpasswd file with one user `alice` (password `s3cret`) hashed at `cost`. */
async function htpasswdFile(cost: number): Promise<{ path: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'oci-os-htpasswd-'));
  const path = join(dir, 'htpasswd');
  await writeFile(path, `alice:${bcrypt.hashSync('s3cret', cost)}\n`);
  return { path, dir };
}

/** Milliseconds taken by `n` sequential GET /v2/ with credentials from `creds(i)`, each expected to answer `status`. */
async function timed(reg: { url: string }, n: number, status: number, creds: (i: number) => Record<string, string>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) assert.equal((await call(reg, 'GET', '/v2/', { headers: creds(i) })).status, status);
  return performance.now() - started;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('registry server: hardening', () => {
  it('takes as long to refuse an unknown user as a wrong password', async () => {
    const { path, dir } = await htpasswdFile(9);
    const reg = await tempRegistry({ htpasswdFile: path });
    try {
      await timed(reg, 1, 200, () => basic('alice', 's3cret'));
      const known = await timed(reg, 4, 401, (i) => basic('alice', `wrong${i}`));
      const unknown = await timed(reg, 4, 401, (i) => basic(`nobody${i}`, 's3cret'));
      // Without the dummy comparison an unknown user is refused about a hundred times faster.
      assert.ok(unknown >= known * 0.4, `unknown user ${unknown.toFixed(0)} ms, wrong password ${known.toFixed(0)} ms`);
      assert.equal((await call(reg, 'GET', '/v2/', { headers: basic('alice', 's3cret') })).status, 200);
    } finally {
      await reg.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('answers every request of a burst of concurrent verifications', async () => {
    const { path, dir } = await htpasswdFile(4);
    const reg = await tempRegistry({ htpasswdFile: path });
    try {
      const answers = await Promise.all([
        ...Array.from({ length: 8 }, (_, i) => call(reg, 'GET', '/v2/', { headers: basic(i % 2 ? 'alice' : 'bob', `wrong${i}`) })),
        ...Array.from({ length: 3 }, () => call(reg, 'GET', '/v2/', { headers: basic('alice', 's3cret') })),
      ]);
      assert.deepEqual(
        answers.map((a) => a.status),
        [...Array(8).fill(401), 200, 200, 200],
      );
    } finally {
      await reg.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses further guesses from an address with a quick 429, but not its logged-in client', async () => {
    const { path, dir } = await htpasswdFile(4);
    const reg = await tempRegistry({ htpasswdFile: path });
    try {
      await timed(reg, 1, 200, () => basic('alice', 's3cret'));
      await timed(reg, 10, 401, (i) => basic('alice', `guess${i}`));
      const refused = await call(reg, 'GET', '/v2/', { headers: basic('alice', 'guess10') });
      assert.equal(refused.status, 429);
      assert.equal(errorCode(refused), 'TOOMANYREQUESTS');
      const retryAfter = Number(refused.header('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${refused.header('retry-after')}`);
      const anonymous = await call(reg, 'GET', '/v2/');
      assert.equal(anonymous.status, 401, 'a request without credentials still gets the challenge');
      const valid = await timed(reg, 1, 200, () => basic('alice', 's3cret'));
      assert.ok(valid < 900, `valid request took ${valid.toFixed(0)} ms`);
    } finally {
      await reg.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses subjects with unsupported digest algorithms and lists referrers by the exact subject digest', async () => {
    const reg = await tempRegistry();
    try {
      const config = await pushBlob(reg, 'a', '{}');
      const base = imageManifest({ digest: config, size: 2 }, []);
      const target = await pushManifest(reg, 'a', 'v1', base);
      assert.equal(target.answer.status, 201);
      const hex = target.digest.slice('sha256:'.length);
      const withSubject = (digest: string, tag: string): Record<string, unknown> =>
        imageManifest({ digest: config, size: 2 }, [], {
          artifactType: `x/${tag}`,
          subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: target.bytes.length },
        });
      for (const [digest, tag] of [
        [`md5:${hex}`, 'md5'],
        [`sha512:${hex}${hex}`, 'sha512'],
        [`sha256:${hex.toUpperCase()}`, 'upper'],
        ['sha256:abc', 'short'],
      ] as const) {
        const put = await pushManifest(reg, 'a', tag, withSubject(digest, tag));
        assert.equal(put.answer.status, 400, `${digest}: ${put.answer.text}`);
        assert.equal(errorCode(put.answer), 'MANIFEST_INVALID');
        assert.match(put.answer.json.errors[0].message, /^subject: /);
      }
      const none = await call(reg, 'GET', `/v2/a/referrers/${target.digest}`);
      assert.deepEqual(none.json.manifests, []);

      const good = await pushManifest(reg, 'a', 'sig', withSubject(target.digest, 'sig'));
      assert.equal(good.answer.status, 201, good.answer.text);
      assert.equal(good.answer.header('oci-subject'), target.digest);
      await stat(join(reg.root, 'repositories', 'a', '_referrers', 'sha256', hex, good.digest.slice('sha256:'.length)));

      // An entry filed under this subject by an older version for an md5 subject is not listed.
      const legacy = await pushManifest(reg, 'a', 'legacy', imageManifest({ digest: config, size: 2 }, [], { annotations: { n: 'legacy' } }));
      const legacyHex = legacy.digest.slice('sha256:'.length);
      await writeFile(
        join(reg.root, 'repositories', 'a', '_manifests', 'sha256', legacyHex),
        JSON.stringify({
          digest: legacy.digest,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          size: legacy.bytes.length,
          subject: `md5:${hex}`,
        }),
      );
      await writeFile(join(reg.root, 'repositories', 'a', '_referrers', 'sha256', hex, legacyHex), '');

      const listed = await call(reg, 'GET', `/v2/a/referrers/${target.digest}`);
      assert.equal(listed.status, 200);
      assert.deepEqual(
        listed.json.manifests.map((m: { digest: string }) => m.digest),
        [good.digest],
      );
      assert.equal((await call(reg, 'GET', `/v2/a/referrers/sha512:${hex}${hex}`)).status, 400);
    } finally {
      await reg.stop();
    }
  });

  it('removes upload sessions that stay idle longer than the limit', async () => {
    const reg = await tempRegistry({ uploadIdleMs: 600 });
    try {
      const idle = (await call(reg, 'POST', '/v2/s/blobs/uploads/')).header('location')!;
      const busy = (await call(reg, 'POST', '/v2/s/blobs/uploads/')).header('location')!;
      await sleep(400);
      assert.equal((await call(reg, 'PATCH', busy, { body: 'abc', headers: { 'content-range': '0-2' } })).status, 202);
      await sleep(400);
      const gone = await call(reg, 'GET', idle);
      assert.equal(gone.status, 404);
      assert.equal(errorCode(gone), 'BLOB_UPLOAD_UNKNOWN');
      const kept = await call(reg, 'GET', busy);
      assert.equal(kept.status, 204);
      assert.equal(kept.header('range'), '0-2');
      assert.deepEqual(await readdir(join(reg.root, 'uploads')), [busy.split('/').pop()]);
      assert.equal((await call(reg, 'PUT', `${busy}?digest=${sha('abc')}`)).status, 201);
    } finally {
      await reg.stop();
    }
  });

  it('removes idle sessions left on disk by an earlier run', async () => {
    const reg = await tempRegistry({ uploadIdleMs: 60_000 });
    try {
      const old = '00000000-0000-4000-8000-000000000001';
      const recent = '00000000-0000-4000-8000-000000000002';
      for (const id of [old, recent]) {
        const dir = join(reg.root, 'uploads', id);
        await mkdir(dir);
        await writeFile(join(dir, 'info.json'), JSON.stringify({ name: 'left' }));
        await writeFile(join(dir, 'data'), 'partial');
      }
      const hourAgo = new Date(Date.now() - 3600_000);
      for (const p of ['data', 'info.json', '']) await utimes(join(reg.root, 'uploads', old, p), hourAgo, hourAgo);
      assert.equal((await call(reg, 'GET', `/v2/left/blobs/uploads/${old}`)).status, 404);
      const fresh = (await call(reg, 'POST', '/v2/left/blobs/uploads/')).header('location')!;
      assert.deepEqual((await readdir(join(reg.root, 'uploads'))).sort(), [fresh.split('/').pop(), recent].sort());
      const resumed = await call(reg, 'GET', `/v2/left/blobs/uploads/${recent}`);
      assert.equal(resumed.status, 204);
      assert.equal(resumed.header('range'), '0-6');
    } finally {
      await reg.stop();
    }
  });

  it('caps the number of open upload sessions with 429 and Retry-After', async () => {
    const reg = await tempRegistry({ maxUploadSessions: 2, uploadIdleMs: 600 });
    try {
      const first = await call(reg, 'POST', '/v2/cap/blobs/uploads/');
      assert.equal(first.status, 202);
      assert.equal((await call(reg, 'POST', '/v2/cap/blobs/uploads/')).status, 202);
      const refused = await call(reg, 'POST', '/v2/cap/blobs/uploads/');
      assert.equal(refused.status, 429);
      assert.equal(errorCode(refused), 'TOOMANYREQUESTS');
      assert.match(refused.header('retry-after') ?? '', /^\d+$/);
      const monolithic = await call(reg, 'POST', `/v2/cap/blobs/uploads/?digest=${sha('x')}`, { body: 'x' });
      assert.equal(monolithic.status, 429);
      assert.equal((await readdir(join(reg.root, 'uploads'))).length, 2);

      assert.equal((await call(reg, 'DELETE', first.header('location')!)).status, 204);
      assert.equal((await call(reg, 'POST', `/v2/cap/blobs/uploads/?digest=${sha('x')}`, { body: 'x' })).status, 201);
      assert.equal((await call(reg, 'POST', '/v2/cap/blobs/uploads/')).status, 202);
      assert.equal((await call(reg, 'POST', '/v2/cap/blobs/uploads/')).status, 429);
      await sleep(800);
      assert.equal((await call(reg, 'POST', '/v2/cap/blobs/uploads/')).status, 202, 'idle sessions free their slots');
    } finally {
      await reg.stop();
    }
  });

  it('closes a connection whose body stalls, but not a slow one that keeps sending', async () => {
    const reg = await tempRegistry({ idleTimeoutMs: 300 });
    try {
      const loc = (await call(reg, 'POST', '/v2/slow/blobs/uploads/')).header('location')!;
      const stalled = connect(reg.port, '127.0.0.1');
      stalled.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => stalled.on('close', () => resolve()));
      const started = performance.now();
      stalled.write(`PATCH ${loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n`);
      stalled.write(Buffer.alloc(10, 1));
      await closed;
      const after = performance.now() - started;
      assert.ok(after >= 250 && after < 5000, `closed after ${after.toFixed(0)} ms`);
      const status = await call(reg, 'GET', loc);
      assert.equal(status.header('range'), '0-9');

      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(reg.port, '127.0.0.1');
        s.setNoDelay(true);
        let text = '';
        s.on('data', (d) => (text += d.toString()));
        s.on('error', reject);
        s.on('close', () => resolve(text));
        s.write(`PATCH ${loc} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Range: 10-17\r\nContent-Length: 8\r\nConnection: close\r\n\r\n`);
        let sent = 0;
        const timer = setInterval(() => {
          s.write(Buffer.alloc(1, 1));
          if (++sent === 8) clearInterval(timer);
        }, 100);
      });
      assert.match(answer, /^HTTP\/1\.1 202 /);
      assert.equal((await call(reg, 'GET', loc)).header('range'), '0-17');
    } finally {
      await reg.stop();
    }
  });
});
