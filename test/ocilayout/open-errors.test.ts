/**
 * How opening a local layout or archive fails is decided where it fails: a
 * source opened for reading that is not there is NOT_FOUND, an archive that
 * cannot be written is named by its own path, and an aborted writer keeps
 * blobs that a committed artifact manifest it cannot read may use.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciArchiveWriter, openArchiveForReading, unpackArchive } from '../../src/ocilayout/archive.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { tempDir } from '../helpers/cli.js';

function blobOf(
  text: string | Buffer,
  mediaType: string = MediaType.octetStream,
): { desc: { mediaType: string; digest: string; size: number }; bytes: Buffer } {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return { desc: { mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length }, bytes };
}

describe('a local source opened for reading', () => {
  it('is NOT_FOUND when it is not there, and unreadable for other errors', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'file'), 'x');
    const missing = join(dir, 'nonexist');
    await assert.rejects(OciLayout.open(missing), (e) => isOciError(e, 'NOT_FOUND') && e.message === `cannot read ${missing}: no such file or directory`);
    await assert.rejects(
      openArchiveForReading(`${missing}.tar`),
      (e) => isOciError(e, 'NOT_FOUND') && e.message === `cannot read ${missing}.tar: no such file or directory`,
    );
    const below = join(dir, 'file', 'lay');
    await assert.rejects(OciLayout.open(below), (e) => isOciError(e, 'INPUT_UNREADABLE') && e.message === `cannot read ${below}: a parent is not a directory`);
  });

  it('leaves unpackArchive of a missing file unreadable when not asked for a source', async (t) => {
    const dir = await tempDir(t);
    const missing = join(dir, 'nonexist.tar');
    await mkdir(join(dir, 'out'));
    await assert.rejects(unpackArchive(missing, join(dir, 'out')), (e) => isOciError(e, 'INPUT_UNREADABLE'));
  });
});

describe('an archive that cannot be written', () => {
  it('is reported by the archive path, not the directory it would go in', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'file'), 'x');
    const cases: Array<[string, string]> = [
      [join(dir, 'missing', 'x.tar'), 'no such file or directory'],
      [join(dir, 'file', 'x.tar'), 'a parent is not a directory'],
    ];
    for (const [file, reason] of cases) {
      await assert.rejects(OciArchiveWriter.open(file), (e) => isOciError(e, 'OUTPUT_UNWRITABLE') && e.message === `cannot write ${file}: ${reason}`, file);
    }
  });
});

describe('abort() and committed artifact manifests', () => {
  it('keeps a blob when a committed artifact manifest that may use it cannot be read', async (t) => {
    const dir = join(await tempDir(t), 'lay');
    const a = await OciLayout.open(dir, { create: true });
    const x = blobOf('artifact payload');
    await a.push(x.desc, Readable.from([x.bytes]));
    const b = await OciLayout.open(dir, { create: true });
    assert.equal(await b.exists(x.desc), true); // B will not write it again
    // Larger than abort() reads when looking for what committed images use.
    const artifact = {
      mediaType: MediaType.ociArtifactManifest,
      artifactType: 'application/example',
      blobs: [x.desc],
      annotations: { 'org.example.padding': 'x'.repeat((4 << 20) + 1) },
    };
    const m = blobOf(JSON.stringify(artifact), MediaType.ociArtifactManifest);
    await b.push(m.desc, Readable.from([m.bytes]));
    await b.tag(m.desc, 'artifact');
    await b.commit();
    await a.abort();
    assert.ok(existsSync(a.blobPath(x.desc.digest)), 'the blob the artifact manifest names is still there');
  });
});
