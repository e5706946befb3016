import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { parseLocalLocation } from '../../src/ocilayout/location.js';
import { buildOsImageToLocal } from '../../src/osimage/build-local.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { openFilesOn } from '../helpers/open-files.js';

test('an aborted build leaves the layout exactly as it was', async (t) => {
  const dir = await tempDir(t);
  const lay = join(dir, 'lay');
  await writeFile(join(dir, 'small'), 'small payload');
  await writeFile(join(dir, 'big'), pseudoRandom(24 << 20, 3));
  await buildOsImageToLocal(`oci:${lay}:keep`, { payloads: [{ name: 'system', path: join(dir, 'small') }] });
  const indexBefore = await readFile(join(lay, 'index.json'));
  const blobsBefore = (await readdir(join(lay, 'blobs', 'sha256'))).sort();

  const abort = new AbortController();
  await assert.rejects(
    buildOsImageToLocal(
      `oci:${lay}:new`,
      {
        payloads: [
          { name: 'a', path: join(dir, 'small') },
          { name: 'b', path: join(dir, 'big') },
        ],
        progress: (e) => {
          if (e.type === 'blob-progress' && e.id === 'b' && e.bytes >= 8 << 20) abort.abort();
        },
      },
      abort.signal,
    ),
    (e) => isOciError(e, 'ABORTED'),
  );
  assert.ok((await readFile(join(lay, 'index.json'))).equals(indexBefore));
  assert.deepEqual((await readdir(join(lay, 'blobs', 'sha256'))).sort(), blobsBefore, 'blobs of the aborted build removed');
  assert.deepEqual((await readdir(lay)).sort(), ['blobs', 'index.json', 'oci-layout'], 'no temporary files left');
});

test('a blob whose bytes do not match its descriptor is refused and not stored', async (t) => {
  const dir = await tempDir(t);
  const layout = await OciLayout.open(join(dir, 'lay'), { create: true });
  const desc = { mediaType: 'application/octet-stream', digest: `sha256:${'0'.repeat(64)}`, size: 3 };
  await assert.rejects(layout.push(desc, [Buffer.from('abc')] as never), (e) => isOciError(e, 'DIGEST_MISMATCH'));
  await assert.rejects(layout.push({ ...desc, size: 2 }, [Buffer.from('abc')] as never), (e) => isOciError(e, 'SIZE_MISMATCH'));
  assert.deepEqual(await readdir(join(dir, 'lay', 'blobs', 'sha256')), []);
  await layout.commit();
  assert.deepEqual((await readdir(join(dir, 'lay'))).sort(), ['blobs', 'oci-layout']);
});

test('fetch verifies what it reads', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'p'), 'payload bytes');
  const r = await buildOsImageToLocal(`oci:${join(dir, 'lay')}`, { payloads: [{ name: 'p', path: join(dir, 'p') }], encoding: { compression: 'none' } });
  const layout = await OciLayout.open(join(dir, 'lay'));
  const desc = await layout.resolve('latest');
  assert.equal(desc.digest, r.descriptor.digest);
  const blob = r.payloads[0]!;
  await writeFile(layout.blobPath(blob.digest), 'payload bytez');
  const stream = await layout.fetch({ mediaType: blob.mediaType, digest: blob.digest, size: blob.blobSize });
  await assert.rejects(
    async () => {
      for await (const _ of stream) void _;
    },
    (e) => isOciError(e, 'DIGEST_MISMATCH'),
  );
  await assert.rejects(layout.resolve('nope'), (e) => isOciError(e, 'NOT_FOUND'));

  // A file longer than its descriptor says is read past that size, and refused.
  await writeFile(layout.blobPath(blob.digest), 'payload bytes and more');
  const longer = await layout.fetch({ mediaType: blob.mediaType, digest: blob.digest, size: blob.blobSize });
  await assert.rejects(
    async () => {
      for await (const _ of longer) void _;
    },
    (e) => isOciError(e, 'SIZE_MISMATCH') || isOciError(e, 'DIGEST_MISMATCH'),
  );
  // A blob that is not there: NOT_FOUND, naming it, before any stream exists.
  const missing = `sha256:${'1'.repeat(64)}`;
  await assert.rejects(
    layout.fetch({ mediaType: blob.mediaType, digest: missing, size: 5 }),
    (e) => isOciError(e, 'NOT_FOUND') && e.message === `blob ${missing} is not in layout ${join(dir, 'lay')}`,
  );
});

test('a blob stream closes its file however it ends, and a refused offset leaves no file open', async (t) => {
  if (process.platform !== 'linux') {
    t.skip('open files are listed from /proc/self/fd');
    return;
  }
  const dir = await tempDir(t);
  await writeFile(join(dir, 'p'), pseudoRandom(3 << 20, 5));
  const r = await buildOsImageToLocal(`oci:${join(dir, 'lay')}`, { payloads: [{ name: 'p', path: join(dir, 'p') }], encoding: { compression: 'none' } });
  const layout = await OciLayout.open(join(dir, 'lay'));
  const blob = r.payloads[0]!;
  const desc = { mediaType: blob.mediaType, digest: blob.digest, size: blob.blobSize };
  const path = layout.blobPath(blob.digest);
  const openOnBlob = (): Promise<number> => openFilesOn(path);
  /** Files open on the blob once closes under way have finished (a file handle closes after its stream ends). */
  const settled = async (): Promise<number> => {
    for (let i = 0; i < 100 && (await openOnBlob()) > 0; i++) await new Promise((res) => setTimeout(res, 10));
    return openOnBlob();
  };

  for await (const _ of await layout.fetch(desc)) void _;
  assert.equal(await settled(), 0, 'read to its end');
  const stopped = await layout.fetch(desc);
  stopped.once('data', () => stopped.destroy());
  await new Promise((res) => stopped.once('close', res));
  assert.equal(await settled(), 0, 'destroyed after its first piece');
  await assert.rejects(layout.readBlobFrom(desc, -1), (e) => isOciError(e, 'INTERNAL'));
  assert.equal(await settled(), 0, 'an offset that is not one');
  const tail = await layout.readBlobFrom(desc, blob.blobSize - 10);
  let n = 0;
  for await (const c of tail) n += (c as Buffer).length;
  assert.equal(n, 10);
  assert.equal(await settled(), 0, 'read from an offset to its end');
});

test('local locations parse like the containers tools parse them', () => {
  assert.deepEqual(parseLocalLocation('oci:dir'), { kind: 'oci', path: 'dir', tag: undefined, digest: undefined });
  assert.deepEqual(parseLocalLocation('oci:a/b:v1.0'), { kind: 'oci', path: 'a/b', tag: 'v1.0', digest: undefined });
  assert.deepEqual(parseLocalLocation('oci-archive:/x/y.tar:t'), { kind: 'oci-archive', path: '/x/y.tar', tag: 't', digest: undefined });
  // As in skopeo, the path ends at the first colon; a tag may have '/' (ref.name grammar).
  assert.deepEqual(parseLocalLocation('oci:./c:d/e'), { kind: 'oci', path: './c', tag: 'd/e', digest: undefined });
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseLocalLocation(`oci:dir@${d}`), { kind: 'oci', path: 'dir', tag: undefined, digest: d });
  for (const bad of ['dir', 'oci:', 'oci::tag', 'oci:dir:-bad', 'docker://x'])
    assert.throws(
      () => parseLocalLocation(bad),
      (e) => isOciError(e, 'INVALID_REFERENCE'),
      bad,
    );
});
