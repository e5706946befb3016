import assert from 'node:assert/strict';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { call, errorCode, imageManifest, pushBlob, sha, tempRegistry } from './helpers.js';

/** Sends raw HTTP/1.1 and resolves with everything the server sent before closing (Connection: close). */
function raw(port: number, head: string, body: Buffer | string = ''): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => (text += d.toString()));
    // A server that stops reading may reset the connection while this still sends: what arrived counts.
    s.on('error', () => resolve(text));
    s.on('close', () => resolve(text));
    s.write(head);
    s.write(body);
  });
}

/** `body` as one HTTP chunk followed by the last chunk. */
function chunked(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
}

describe('registry server: failures are answered and leave nothing behind', () => {
  it('refuses a deeply nested manifest with 400 MANIFEST_INVALID and stores nothing', async () => {
    const reg = await tempRegistry();
    try {
      const config = await pushBlob(reg, 'deep', '{}');
      const nested = '['.repeat(5000) + ']'.repeat(5000);
      const text = JSON.stringify(imageManifest({ digest: config, size: 2 }, [], { annotations: { a: 'PLACEHOLDER' } })).replace('"PLACEHOLDER"', nested);
      const put = await call(reg, 'PUT', '/v2/deep/manifests/v1', {
        body: text,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(put.status, 400, put.text);
      assert.equal(errorCode(put), 'MANIFEST_INVALID');
      assert.equal((await call(reg, 'HEAD', `/v2/deep/blobs/${sha(text)}`)).status, 404);
      await assert.rejects(stat(join(reg.root, 'blobs', 'sha256', sha(text).slice(7))));
      assert.deepEqual(await readdir(join(reg.root, 'repositories', 'deep', '_blobs', 'sha256')), [config.slice(7)]);

      // Brackets inside strings do not count, and ordinary nesting passes.
      const fine = imageManifest({ digest: config, size: 2 }, [], { annotations: { a: '[[[['.repeat(100) } });
      const ok = await call(reg, 'PUT', '/v2/deep/manifests/v2', {
        body: JSON.stringify(fine),
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(ok.status, 201, ok.text);
    } finally {
      await reg.stop();
    }
  });

  it('answers an internal failure of a manifest put with 500 and an error body, and undoes what it stored', async () => {
    const reg = await tempRegistry();
    try {
      const config = await pushBlob(reg, 'broken', '{}');
      // A tag that cannot be written: its file's place is taken by a non-empty directory.
      await mkdir(join(reg.root, 'repositories', 'broken', '_tags', 'v1', 'x'), { recursive: true });
      const manifest = imageManifest({ digest: config, size: 2 }, [], {
        subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha('subject'), size: 7 },
      });
      const bytes = JSON.stringify(manifest);
      const put = await call(reg, 'PUT', '/v2/broken/manifests/v1', {
        body: bytes,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(put.status, 500, put.text);
      assert.equal(errorCode(put), 'UNKNOWN');
      const digest = sha(bytes);
      assert.equal((await call(reg, 'HEAD', `/v2/broken/manifests/${digest}`)).status, 404);
      assert.equal((await call(reg, 'HEAD', `/v2/broken/blobs/${digest}`)).status, 404);
      await assert.rejects(stat(join(reg.root, 'blobs', 'sha256', digest.slice(7))));
      assert.deepEqual((await call(reg, 'GET', `/v2/broken/referrers/${sha('subject')}`)).json.manifests, []);
      assert.deepEqual(await readdir(join(reg.root, 'tmp')), []);

      // Another tag of the same manifest keeps working, and the server still answers.
      await rm(join(reg.root, 'repositories', 'broken', '_tags', 'v1'), { recursive: true });
      const again = await call(reg, 'PUT', '/v2/broken/manifests/v1', {
        body: bytes,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(again.status, 201, again.text);
    } finally {
      await reg.stop();
    }
  });

  it('restores the tags a failed put had already moved', async () => {
    const reg = await tempRegistry();
    try {
      const config = await pushBlob(reg, 'tags', '{}');
      const first = JSON.stringify(imageManifest({ digest: config, size: 2 }, [], { annotations: { n: '1' } }));
      const firstPut = await call(reg, 'PUT', '/v2/tags/manifests/a', {
        body: first,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(firstPut.status, 201);
      await mkdir(join(reg.root, 'repositories', 'tags', '_tags', 'b', 'x'), { recursive: true });
      const second = JSON.stringify(imageManifest({ digest: config, size: 2 }, [], { annotations: { n: '2' } }));
      const put = await call(reg, 'PUT', `/v2/tags/manifests/${sha(second)}?tag=a&tag=b`, {
        body: second,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(put.status, 500, put.text);
      assert.equal((await call(reg, 'GET', '/v2/tags/manifests/a')).header('docker-content-digest'), sha(first));
    } finally {
      await reg.stop();
    }
  });

  it('delivers a 413 for a chunked manifest or chunk that is too large instead of dropping the connection', async () => {
    const reg = await tempRegistry({ maxManifestBytes: 1000, chunkMaxLength: 1000 });
    try {
      // Large enough to be still in flight when the server refuses it.
      const big = Buffer.alloc(8 * 1024 * 1024, 0x20);
      const manifest = await raw(
        reg.port,
        'PUT /v2/big/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n' +
          'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
        chunked(big),
      );
      assert.match(manifest, /^HTTP\/1\.1 413 /);
      assert.match(manifest, /"code":"SIZE_INVALID"/);

      const loc = (await call(reg, 'POST', '/v2/big/blobs/uploads/')).header('location')!;
      assert.equal((await call(reg, 'PATCH', loc, { body: 'abc', headers: { 'content-range': '0-2' } })).status, 202);
      const patch = await raw(reg.port, `PATCH ${loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`, chunked(big));
      assert.match(patch, /^HTTP\/1\.1 413 /);
      assert.equal((await call(reg, 'GET', loc)).header('range'), '0-2', 'the refused chunk was rolled back');
    } finally {
      await reg.stop();
    }
  });

  it('closes the connection of a blob download whose file cannot be read, and keeps serving', async () => {
    const reg = await tempRegistry();
    try {
      const digest = await pushBlob(reg, 'gone', 'some bytes');
      // The blob's place is taken by a directory: stat works, reading fails after the headers.
      const path = join(reg.root, 'blobs', 'sha256', digest.slice(7));
      await rm(path);
      await mkdir(path);
      await writeFile(join(path, 'x'), '');
      const started = performance.now();
      const answer = await raw(reg.port, `GET /v2/gone/blobs/${digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok(performance.now() - started < 5000);
      assert.doesNotMatch(answer, /\r\n\r\nsome bytes/);
      assert.equal((await call(reg, 'GET', '/v2/')).status, 200);
    } finally {
      await reg.stop();
    }
  });
});

describe('registry server: requests waiting for an upload session', () => {
  it('settles a request whose client left while it waited for the session, and keeps the session usable', async () => {
    const reg = await tempRegistry();
    try {
      const loc = (await call(reg, 'POST', '/v2/wait/blobs/uploads/')).header('location')!;
      // A PATCH that holds the session: it announces 100 bytes and sends 10.
      const holder = connect(reg.port, '127.0.0.1');
      holder.on('error', () => undefined);
      const holderClosed = new Promise<void>((r) => holder.on('close', () => r()));
      holder.write(`PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n`);
      holder.write(Buffer.alloc(10, 1));
      await new Promise((r) => setTimeout(r, 100));
      // A second PATCH cuts the holder off and waits for the session; its client then leaves too.
      const waiter = connect(reg.port, '127.0.0.1');
      waiter.on('error', () => undefined);
      waiter.write(`PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Range: 10-19\r\nContent-Length: 10\r\n\r\n`);
      // The waiter leaves once the server has its request (the holder was cut off for it): leaving
      // before the server read it would test nothing, and Node 22+ may drop such a request unread.
      const cutOff = await Promise.race([holderClosed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
      assert.ok(cutOff, 'the request waiting for the session cuts the holder off');
      waiter.destroy();
      const status = await call(reg, 'GET', loc);
      assert.equal(status.status, 204);
      assert.equal(status.header('range'), '0-9');
      const rest = Buffer.alloc(5, 2);
      const put = await call(reg, 'PUT', `${loc}?digest=${sha(Buffer.concat([Buffer.alloc(10, 1), rest]))}`, {
        body: rest,
        headers: { 'content-range': '10-14' },
      });
      assert.equal(put.status, 201, put.text);
    } finally {
      await reg.stop();
    }
  });
});
