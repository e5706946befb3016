/**
 * Several writers on one layout directory, and what a writer leaves behind:
 * index.json updates are serialized by a lock file and merged, abort()
 * removes only what its own writer added and nobody else uses, a new layout
 * that received nothing is removed again, and a blob already in place is
 * trusted only when its bytes have its digest.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isOciError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { containerImage, writeLayout } from '../copy/fixtures.js';
import { runCli, tempDir } from '../helpers/cli.js';

const layoutModule = fileURLToPath(new URL('../../src/ocilayout/layout.js', import.meta.url));

function blobOf(text: string | Buffer): { desc: { mediaType: string; digest: string; size: number }; bytes: Buffer } {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return { desc: { mediaType: MediaType.octetStream, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length }, bytes };
}

const tagsOf = async (dir: string): Promise<string[]> =>
  (JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> }).manifests
    .map((m) => m.annotations['org.opencontainers.image.ref.name']!)
    .sort();

/** The pid of a process that has exited (so no live process holds it, for a while). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('concurrent writers of one layout', () => {
  it('keeps every tag when writers commit at the same time', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const b = blobOf('manifest-ish');
    const writers = await Promise.all(Array.from({ length: 6 }, () => OciLayout.open(dir, { create: true })));
    await Promise.all(writers.map((w) => w.push(b.desc, Readable.from([b.bytes]))));
    await Promise.all(writers.map((w, i) => w.tag(b.desc, `t${i}`)));
    await Promise.all(writers.map((w) => w.commit()));
    assert.deepEqual(await tagsOf(dir), ['t0', 't1', 't2', 't3', 't4', 't5']);
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout'], 'no lock or temporary files left');
  });

  it('keeps every tag when separate processes commit at the same time', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const b = blobOf('shared by processes');
    const script = `
      const { OciLayout } = await import(${JSON.stringify(layoutModule)});
      const [dir, name, digest, size] = process.argv.slice(1);
      const desc = { mediaType: 'application/octet-stream', digest, size: Number(size) };
      for (let i = 0; i < 5; i++) {
        const w = await OciLayout.open(dir, { create: true });
        await w.push(desc, [Buffer.from('shared by processes')]);
        await w.tag(desc, name + '-' + i);
        await w.commit();
      }`;
    const run = (name: string): Promise<number | null> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir, name, b.desc.digest, String(b.desc.size)], { stdio: 'inherit' });
        child.on('close', resolve);
      });
    assert.deepEqual(await Promise.all(['p', 'q', 'r'].map(run)), [0, 0, 0]);
    assert.equal((await tagsOf(dir)).length, 15);
  });

  it('does not remove a blob on abort that another writer has since committed', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const a = await OciLayout.open(dir, { create: true });
    const b = await OciLayout.open(dir, { create: true });
    const x = blobOf('shared layer');
    await a.push(x.desc, Readable.from([x.bytes]));
    await b.push(x.desc, Readable.from([x.bytes])); // present: skipped by B
    await b.tag(x.desc, 'b');
    await b.commit();
    await a.abort();
    assert.ok(existsSync(a.blobPath(x.desc.digest)), 'the blob B tagged is still there');
    assert.deepEqual(await tagsOf(dir), ['b']);
  });

  it('does not remove a blob on abort while another writer that may rely on it is still open', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    await writeLayout(dir, blobOf('first'), [], 'keep');
    const a = await OciLayout.open(dir, { create: true });
    const b = await OciLayout.open(dir, { create: true });
    const x = blobOf('layer both want');
    await a.push(x.desc, Readable.from([x.bytes]));
    assert.equal(await b.exists(x.desc), true); // B will not write it again
    await a.abort();
    await b.tag(x.desc, 'b');
    await b.commit();
    assert.ok(existsSync(b.blobPath(x.desc.digest)));
  });

  it('still removes what an aborted writer added when no one else uses it', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const keep = blobOf('kept');
    await writeLayout(dir, keep, [], 'keep');
    const a = await OciLayout.open(dir, { create: true });
    const x = blobOf('dropped');
    await a.push(x.desc, Readable.from([x.bytes]));
    await a.push(keep.desc, Readable.from([keep.bytes]));
    await a.abort();
    assert.equal(existsSync(a.blobPath(x.desc.digest)), false);
    assert.ok(existsSync(a.blobPath(keep.desc.digest)), 'a blob that was there before is kept');
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout']);
  });

  it("does not disturb another writer's temporary file when aborting", async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const a = await OciLayout.open(dir, { create: true });
    const b = await OciLayout.open(dir, { create: true });
    const parts = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2)];
    const x = blobOf(Buffer.concat(parts));
    async function* slow(): AsyncGenerator<Buffer> {
      yield parts[0]!;
      await sleep(200);
      yield parts[1]!;
    }
    const pushed = b.push(x.desc, slow());
    await sleep(50);
    await a.abort();
    await pushed;
    await b.tag(x.desc, 'b');
    await b.commit();
    assert.ok((await readFile(b.blobPath(x.desc.digest))).equals(x.bytes));
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout']);
  });
});

describe('the index.json lock', () => {
  const lockOf = (dir: string): string => join(dir, 'index.json.lock');

  it('waits for a lock that is held, then fails naming it', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const w = await OciLayout.open(dir, { create: true, lockWait: 300 });
    const b = blobOf('x');
    await w.push(b.desc, Readable.from([b.bytes]));
    await w.tag(b.desc, 'x');
    await writeFile(lockOf(dir), `${process.pid}\n`);
    const started = Date.now();
    await assert.rejects(w.commit(), (e) => isOciError(e, 'OUTPUT_UNWRITABLE') && e.message.includes(lockOf(dir)) && /another writer/.test(e.message));
    assert.ok(Date.now() - started >= 250, 'it waited');
    assert.equal(existsSync(join(dir, 'index.json')), false);
    assert.equal(await readFile(lockOf(dir), 'utf8'), `${process.pid}\n`, 'a live holder keeps its lock');
  });

  it('takes over a lock whose holder is gone, or that is too old', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const b = blobOf('y');
    await mkdir(dir);
    await writeFile(lockOf(dir), `${deadPid()}\n`);
    const w = await OciLayout.open(dir, { create: true, lockWait: 2000 });
    await w.push(b.desc, Readable.from([b.bytes]));
    await w.tag(b.desc, 'dead-holder');
    await writeFile(lockOf(dir), `${process.pid}\n`);
    const old = new Date(Date.now() - 120_000);
    await utimes(lockOf(dir), old, old);
    await w.commit();
    assert.deepEqual(await tagsOf(dir), ['dead-holder']);
    assert.equal(existsSync(lockOf(dir)), false);
  });

  it('waits for a lock released while it waits', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const w = await OciLayout.open(dir, { create: true, lockWait: 5000 });
    const b = blobOf('z');
    await w.push(b.desc, Readable.from([b.bytes]));
    await w.tag(b.desc, 'z');
    await writeFile(lockOf(dir), `${process.pid}\n`);
    setTimeout(() => void unlink(lockOf(dir)), 150);
    await w.commit();
    assert.deepEqual(await tagsOf(dir), ['z']);
  });
});

describe('a new layout directory that received nothing', () => {
  it('is removed again, with the parents the writer created, when the write is aborted', async (t) => {
    const root = await tempDir(t);
    const dir = join(root, 'a', 'b', 'lay');
    const w = await OciLayout.open(dir, { create: true });
    const x = blobOf('never tagged');
    await w.push(x.desc, Readable.from([x.bytes]));
    await w.abort();
    assert.deepEqual(await readdir(root), [], 'nothing left');
  });

  it('is kept when it existed before, held something from another writer, or was committed to', async (t) => {
    const root = await tempDir(t);
    await mkdir(join(root, 'existing'));
    const w1 = await OciLayout.open(join(root, 'existing'), { create: true });
    await w1.abort();
    assert.deepEqual((await readdir(join(root, 'existing'))).sort(), ['blobs', 'oci-layout']);

    const shared = join(root, 'shared');
    const a = await OciLayout.open(shared, { create: true });
    const b = await OciLayout.open(shared, { create: true });
    const x = blobOf('from b');
    await b.push(x.desc, Readable.from([x.bytes]));
    await b.tag(x.desc, 'b');
    await b.commit();
    await a.abort();
    assert.deepEqual(await tagsOf(shared), ['b']);

    const once = join(root, 'once');
    const c = await OciLayout.open(once, { create: true });
    await c.push(x.desc, Readable.from([x.bytes]));
    await c.tag(x.desc, 'c');
    await c.commit();
    await c.abort();
    assert.deepEqual(await tagsOf(once), ['c']);
  });

  it('is not left behind by a copy that fails', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1, layerSize: 20_000 });
    await writeLayout(join(dir, 'src'), img.manifest, img.blobs, 'v1');
    const layer = img.blobs[1]!;
    const bad = Buffer.from(layer.bytes);
    bad[100]! ^= 1;
    await writeFile(join(dir, 'src', 'blobs', 'sha256', layer.desc.digest.slice(7)), bad);
    const r = await runCli(['copy', `oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(existsSync(join(dir, 'dst')), false, 'the new destination is gone');
  });
});

describe('a blob already at the destination', () => {
  it('counts as present only when its bytes have its digest; a damaged one is written again', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const w = await OciLayout.open(dir, { create: true });
    const x = blobOf('layer bytes 0123456789');
    const path = w.blobPath(x.desc.digest);
    const damaged = Buffer.from(x.bytes);
    damaged[3]! ^= 0x20;
    await writeFile(path, damaged);
    assert.equal(await w.exists(x.desc), false, 'same size, other bytes');
    await w.push(x.desc, Readable.from([x.bytes]));
    assert.ok((await readFile(path)).equals(x.bytes), 'rewritten');
    assert.equal(await w.exists(x.desc), true);
    await w.commit();
  });

  it('is hashed once per store, not at every check', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const x = blobOf('checked once');
    await writeLayout(dir, x, [], 'v1');
    const w = await OciLayout.open(dir, { create: true });
    const path = w.blobPath(x.desc.digest);
    const when = new Date(1_700_000_000_000);
    await utimes(path, when, when);
    assert.equal(await w.exists(x.desc), true);
    // Same file, size and time: the first answer stands (a changed file would be hashed again).
    const damaged = Buffer.from(x.bytes);
    damaged[0]! ^= 1;
    await writeFile(path, damaged);
    await utimes(path, when, when);
    assert.equal(await w.exists(x.desc), true);
    await writeFile(path, damaged);
    assert.equal(await w.exists(x.desc), false, 'a file that changed is checked again');
    await w.abort();
    assert.ok((await stat(path)).isFile(), 'abort leaves a blob it did not add');
  });

  it('is replaced by copy when damaged, so the tag points at the right bytes', async (t) => {
    const dir = await tempDir(t);
    const img = await containerImage('amd64', { layers: 1, layerSize: 20_000 });
    await writeLayout(join(dir, 'src'), img.manifest, img.blobs, 'v1');
    const config = img.blobs[0]!;
    const bad = Buffer.from(config.bytes);
    bad[5]! ^= 1;
    await mkdir(join(dir, 'dst', 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'dst', 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}\n');
    await writeFile(join(dir, 'dst', 'blobs', 'sha256', config.desc.digest.slice(7)), bad);
    const c = await runCli(['copy', `oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`]);
    assert.equal(c.code, 0, c.stderr);
    assert.ok((await readFile(join(dir, 'dst', 'blobs', 'sha256', config.desc.digest.slice(7)))).equals(config.bytes));
    const v = await runCli(['verify', `oci:${join(dir, 'dst')}:v1`]);
    assert.equal(v.code, 0, v.stderr);
  });
});
