import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { type RunningRegistry, startRegistryServer } from '../../src/server/index.js';
import { call, errorCode, imageManifest, pushBlob, sha } from './helpers.js';

/**
 * Mounting a tmpfs needs root. Outside CI a test without it is skipped; under
 * CI=true (which runs as root) it fails, so that a missing privilege cannot
 * hide the test.
 */
function requireRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  const msg = 'needs root to mount a small tmpfs';
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(msg);
  t.skip(msg);
  return false;
}

/** A registry whose root is on a fresh 4 MiB tmpfs, and a way to fill that file system up. */
async function registryOnSmallDisk(): Promise<{
  reg: RunningRegistry;
  mnt: string;
  root: string;
  fill(leave: number): Promise<void>;
  free(): Promise<void>;
  stop(): Promise<void>;
}> {
  const mnt = await mkdtemp(join(tmpdir(), 'oci-os-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  let reg: RunningRegistry | undefined;
  try {
    const root = join(mnt, 'root');
    reg = await startRegistryServer({ root, host: '127.0.0.1', port: 0 });
    const filler = join(mnt, 'filler');
    return {
      reg,
      mnt,
      root,
      /** Writes a filler file until at most `leave` bytes are free. */
      fill: async (leave) => {
        const fh = await open(filler, 'w');
        try {
          const block = Buffer.alloc(4096, 1);
          for (;;) {
            const { bavail, bsize } = await statfs(mnt);
            if (bavail * bsize <= leave) break;
            try {
              await fh.write(block);
            } catch {
              break;
            }
          }
        } finally {
          await fh.close();
        }
      },
      free: () => rm(filler, { force: true }),
      stop: async () => {
        await reg?.close();
        execFileSync('umount', [mnt]);
        await rm(mnt, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await reg?.close();
    execFileSync('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
    throw err;
  }
}

/** Bytes that differ at every position, so a hole or a shifted copy shows in the digest. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 255;
  return b;
}

describe('registry server: a full disk', () => {
  it('answers 507 to a chunk that does not fit, keeps the bytes on disk as the offset, and stores the right blob after a resume', async (t) => {
    if (!requireRoot(t)) return;
    const disk = await registryOnSmallDisk();
    try {
      const { reg } = disk;
      const data = pattern(3 * 1024 * 1024 + 12345);
      const digest = sha(data);
      const start = await call(reg, 'POST', '/v2/full/blobs/uploads/');
      const loc = start.header('location')!;
      const id = loc.split('/').pop()!;
      await disk.fill(2 * 1024 * 1024);

      const patch = await call(reg, 'PATCH', loc, { body: data, headers: { 'content-range': `0-${data.length - 1}` } });
      assert.equal(patch.status, 507, patch.text);
      assert.equal(errorCode(patch), 'UNKNOWN');
      const onDisk = (await stat(join(disk.root, 'uploads', id, 'data'))).size;
      assert.ok(onDisk > 0 && onDisk < data.length, `${onDisk} bytes on disk`);
      assert.equal(patch.header('range'), `0-${onDisk - 1}`, 'the 507 reports the bytes that are on disk');
      assert.deepEqual(await readFile(join(disk.root, 'uploads', id, 'data')), data.subarray(0, onDisk));

      const status = await call(reg, 'GET', loc);
      assert.equal(status.status, 204);
      assert.equal(status.header('range'), `0-${onDisk - 1}`);

      // Still full: the closing PUT of the rest is refused too, and the offset stays.
      const stillFull = await call(reg, 'PUT', `${loc}?digest=${digest}`, {
        body: data.subarray(onDisk),
        headers: { 'content-range': `${onDisk}-${data.length - 1}` },
      });
      assert.equal(stillFull.status, 507, stillFull.text);
      const after = Number(/^0-(\d+)$/.exec(stillFull.header('range') ?? '')![1]) + 1;
      assert.equal(after, (await stat(join(disk.root, 'uploads', id, 'data'))).size);

      await disk.free();
      const put = await call(reg, 'PUT', `${loc}?digest=${digest}`, {
        body: data.subarray(after),
        headers: { 'content-range': `${after}-${data.length - 1}` },
      });
      assert.equal(put.status, 201, put.text);
      const got = await call(reg, 'GET', `/v2/full/blobs/${digest}`);
      assert.equal(got.status, 200);
      assert.equal(sha(got.bytes), digest, 'the stored blob hashes to its digest');
      assert.deepEqual(await readdir(join(disk.root, 'tmp')), []);
    } finally {
      await disk.stop();
    }
  });

  it('stores nothing from a monolithic upload or a manifest that does not fit', async (t) => {
    if (!requireRoot(t)) return;
    const disk = await registryOnSmallDisk();
    try {
      const { reg } = disk;
      const config = await pushBlob(reg, 'full', '{}');
      const manifest = imageManifest({ digest: config, size: 2 }, [], { annotations: { pad: 'x'.repeat(20000) } });
      const bytes = Buffer.from(JSON.stringify(manifest));

      await disk.fill(0);
      const data = pattern(256 * 1024);
      const mono = await call(reg, 'POST', `/v2/full/blobs/uploads/?digest=${sha(data)}`, { body: data });
      assert.equal(mono.status, 507, mono.text);
      assert.equal(errorCode(mono), 'UNKNOWN');
      assert.equal(mono.header('location'), undefined, 'no Location of a session that is gone');
      assert.equal((await call(reg, 'HEAD', `/v2/full/blobs/${sha(data)}`)).status, 404);
      assert.deepEqual(await readdir(join(disk.root, 'uploads')), []);

      const put = await call(reg, 'PUT', '/v2/full/manifests/v1', {
        body: bytes,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(put.status, 507, put.text);
      assert.equal(errorCode(put), 'UNKNOWN');
      assert.equal((await call(reg, 'GET', '/v2/full/manifests/v1')).status, 404);
      assert.equal((await call(reg, 'HEAD', `/v2/full/manifests/${sha(bytes)}`)).status, 404);
      assert.equal((await call(reg, 'HEAD', `/v2/full/blobs/${sha(bytes)}`)).status, 404);
      await assert.rejects(stat(join(disk.root, 'blobs', 'sha256', sha(bytes).slice(7))));
      assert.deepEqual(await readdir(join(disk.root, 'tmp')), []);

      await disk.free();
      const again = await call(reg, 'PUT', '/v2/full/manifests/v1', {
        body: bytes,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(again.status, 201, again.text);
      assert.deepEqual((await call(reg, 'GET', '/v2/full/manifests/v1')).bytes, bytes);
    } finally {
      await disk.stop();
    }
  });
});
