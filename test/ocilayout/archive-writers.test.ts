/**
 * Several writers of one oci-archive, and opening a layout with a broken
 * index.json for writing. An archive is replaced as a whole, so commits are
 * serialized by a lock file next to it and each merges its tags into the
 * archive as it is at commit time: no writer's tags are lost. A layout whose
 * index.json cannot be merged into fails when opened, before a blob is written.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciArchiveWriter, openArchiveForReading, packLayout } from '../../src/ocilayout/archive.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { runCli, tempDir } from '../helpers/cli.js';

function blobOf(text: string): { desc: { mediaType: string; digest: string; size: number }; bytes: Buffer } {
  const bytes = Buffer.from(text);
  return { desc: { mediaType: MediaType.octetStream, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length }, bytes };
}

/** The archive's tags, each with whether its blob is in the archive. */
async function archiveTags(file: string): Promise<Record<string, boolean>> {
  const { layout, close } = await openArchiveForReading(file);
  try {
    const out: Record<string, boolean> = {};
    for (const d of (await layout.readIndex()).manifests) out[d.annotations!['org.opencontainers.image.ref.name']!] = await layout.exists(d);
    return out;
  } finally {
    await close();
  }
}

async function write(file: string, text: string, tag: string): Promise<void> {
  const w = await OciArchiveWriter.open(file);
  const b = blobOf(text);
  await w.push(b.desc, Readable.from([b.bytes]));
  await w.tag(b.desc, tag);
  await w.commit();
}

describe('concurrent writers of one oci-archive', () => {
  it('keeps every tag when writers that opened the same archive commit at the same time', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'images.tar');
    await write(file, 'first', 't0');
    const writers = await Promise.all(Array.from({ length: 4 }, () => OciArchiveWriter.open(file)));
    await Promise.all(
      writers.map(async (w, i) => {
        const b = blobOf(`image ${i + 1}`);
        await w.push(b.desc, Readable.from([b.bytes]));
        await w.tag(b.desc, `t${i + 1}`);
      }),
    );
    await Promise.all(writers.map((w) => w.commit()));
    assert.deepEqual(await archiveTags(file), { t0: true, t1: true, t2: true, t3: true, t4: true });
    assert.deepEqual(await readdir(dir), ['images.tar'], 'no lock or temporary files left');
  });

  it('merges with the archive as it is at commit time, not as it was when opened', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'images.tar');
    const early = await OciArchiveWriter.open(file); // no archive yet
    const b = blobOf('early');
    await early.push(b.desc, Readable.from([b.bytes]));
    await early.tag(b.desc, 'early');
    await write(file, 'late, committed first', 'late');
    await write(file, 'moved', 'early'); // replaced again by early's commit: its tag wins
    await early.commit();
    assert.deepEqual(await archiveTags(file), { early: true, late: true });
    const { layout, close } = await openArchiveForReading(file);
    assert.equal((await layout.resolve('early')).digest, b.desc.digest);
    await close();
  });

  it('keeps every tag when separate CLI processes build into it at the same time', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'conc.tar');
    for (let i = 0; i < 4; i++) await writeFile(join(dir, `p${i}.bin`), Buffer.alloc(2000 + i * 50_000, i + 1));
    const first = await runCli(['build', '-q', '-p', `s=${join(dir, 'p0.bin')}`, '-o', `oci-archive:${file}:t0`]);
    assert.equal(first.code, 0, first.stderr);
    const rs = await Promise.all([1, 2, 3].map((i) => runCli(['build', '-q', '-p', `s=${join(dir, `p${i}.bin`)}`, '-o', `oci-archive:${file}:t${i}`])));
    for (const r of rs) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await archiveTags(file), { t0: true, t1: true, t2: true, t3: true });
    for (const tag of ['t0', 't1', 't2', 't3']) {
      const v = await runCli(['verify', `oci-archive:${file}:${tag}`]);
      assert.equal(v.code, 0, `${tag}: ${v.stderr}`);
    }
    assert.deepEqual(
      (await readdir(dir)).filter((n) => !n.endsWith('.bin')),
      ['conc.tar'],
    );
  });

  it('waits for a writer holding the lock, then fails naming it and leaves the archive as it was', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'images.tar');
    await write(file, 'first', 't0');
    const before = await readFile(file);
    const w = await OciArchiveWriter.open(file, { lockWait: 300 });
    const b = blobOf('blocked');
    await w.push(b.desc, Readable.from([b.bytes]));
    await w.tag(b.desc, 'blocked');
    await writeFile(`${file}.lock`, `${process.pid}\n`);
    await assert.rejects(
      w.commit(),
      (e) => isOciError(e, 'OUTPUT_UNWRITABLE') && e.message.includes(`${file}.lock`) && /archive .* is locked by another writer/.test(e.message),
    );
    assert.ok((await readFile(file)).equals(before), 'the archive is unchanged');
    assert.deepEqual((await readdir(dir)).sort(), ['images.tar', 'images.tar.lock'], 'a live holder keeps its lock; no temporary files');
  });

  it('fails without changing anything when the archive it merges with is unreadable at commit time', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'images.tar');
    await write(file, 'first', 't0');
    const w = await OciArchiveWriter.open(file);
    const b = blobOf('second');
    await w.push(b.desc, Readable.from([b.bytes]));
    await w.tag(b.desc, 't1');
    await writeFile(file, 'not a tar archive at all'.repeat(40));
    await assert.rejects(w.commit(), (e) => isOciError(e) && e.message.startsWith(`${file} is not a readable tar archive`));
    assert.equal(await readFile(file, 'utf8'), 'not a tar archive at all'.repeat(40));
    assert.deepEqual(await readdir(dir), ['images.tar'], 'no lock or temporary files left');
  });
});

describe('opening a layout with a broken index.json for writing', () => {
  async function brokenLayout(dir: string): Promise<void> {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}\n');
    await writeFile(join(dir, 'index.json'), '{"manifests": [');
  }

  it('fails at open, before anything is written', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    await brokenLayout(dir);
    await assert.rejects(OciLayout.open(dir, { create: true }), (e) => isOciError(e) && e.message === `${join(dir, 'index.json')} is not valid JSON`);
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout']);
    assert.deepEqual(await readdir(join(dir, 'blobs', 'sha256')), []);
  });

  it('makes a build fail without writing a blob, into a layout or an archive', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'p.bin'), Buffer.alloc(10_000, 7));
    const lay = join(dir, 'lay');
    await brokenLayout(lay);
    const r = await runCli(['build', '-q', '-p', `s=${join(dir, 'p.bin')}`, '-o', `oci:${lay}:v1`]);
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /index\.json is not valid JSON/);
    assert.deepEqual(await readdir(join(lay, 'blobs', 'sha256')), [], 'no blob written');
    assert.deepEqual((await readdir(lay)).sort(), ['blobs', 'index.json', 'oci-layout']);

    const file = join(dir, 'bad.tar');
    await packLayout(lay, file);
    const a = await runCli(['build', '-q', '-p', `s=${join(dir, 'p.bin')}`, '-o', `oci-archive:${file}:v1`]);
    assert.notEqual(a.code, 0, a.stderr);
    assert.match(a.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: index\\.json is not valid JSON`));
    assert.equal(existsSync(`${file}.lock`), false);
    assert.deepEqual((await readdir(dir)).sort(), ['bad.tar', 'lay', 'p.bin']);
  });
});
