/**
 * What a layout trusts: blobs of every digest algorithm are checked (or
 * refused when they cannot be), and a malformed index.json is reported,
 * not crashed on.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { isWholeReader } from '../../src/content/capabilities.js';
import { fetchAll } from '../../src/content/fetch-all.js';
import { openLocationForReading } from '../../src/copy/locations.js';
import { type ErrorCode, isOciError } from '../../src/errors.js';
import { DigestStream } from '../../src/oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../../src/oci/limits.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { packLayout } from '../../src/ocilayout/archive.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

const digestOf = (alg: string, b: Buffer): string => `${alg}:${createHash(alg).update(b).digest('hex')}`;

/**
 * A container image layout written by hand, its layer stored under the
 * given digest (`blobs/<alg>/<hex>`); config and manifest are sha256.
 */
async function layoutWithLayer(dir: string, layer: Buffer, layerDigest: string): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf('sha256', config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: layerDigest, size: layer.length }],
    }),
  );
  const put = async (digest: string, bytes: Buffer): Promise<void> => {
    const [alg, hex] = digest.split(':') as [string, string];
    await mkdir(join(dir, 'blobs', alg), { recursive: true });
    await writeFile(join(dir, 'blobs', alg, hex), bytes);
  };
  await put(digestOf('sha256', config), config);
  await put(layerDigest, layer);
  await put(digestOf('sha256', manifest), manifest);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}\n');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        {
          mediaType: MediaType.ociManifest,
          digest: digestOf('sha256', manifest),
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': 'v1' },
        },
      ],
    }),
  );
}

describe('digest algorithms', () => {
  it('verifies and copies sha512 blobs, storing them under blobs/sha512', async (t) => {
    const dir = await tempDir(t);
    const layer = pseudoRandom(200_000, 7);
    const d512 = digestOf('sha512', layer);
    await layoutWithLayer(join(dir, 'src'), layer, d512);

    const ok = await runCli(['verify', `oci:${join(dir, 'src')}:v1`]);
    assert.equal(ok.code, 0, ok.stderr);
    const copied = await runCli(['copy', `oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.ok((await readFile(join(dir, 'dst', 'blobs', 'sha512', d512.slice(7)))).equals(layer));
    assert.equal((await runCli(['verify', `oci:${join(dir, 'dst')}:v1`])).code, 0);
  });

  it('fails verify and copy with exit code 5 when a sha512 blob was changed', async (t) => {
    const dir = await tempDir(t);
    const layer = pseudoRandom(200_000, 8);
    const d512 = digestOf('sha512', layer);
    const bad = Buffer.from(layer);
    bad[1000]! ^= 0x01; // same size, other bytes
    await layoutWithLayer(join(dir, 'src'), bad, d512);

    const v = await runCli(['verify', `oci:${join(dir, 'src')}:v1`]);
    assert.equal(v.code, 5, v.stderr);
    assert.match(v.stderr, new RegExp(`blob ${d512}: content has digest sha512:[0-9a-f]{128}, expected ${d512}`));
    // An existing directory: a new one would be removed altogether (writers.test.ts).
    await mkdir(join(dir, 'dst'));
    const c = await runCli(['copy', `oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`]);
    assert.equal(c.code, 5, c.stderr);
    assert.match(c.stderr, new RegExp(`blob ${d512}: content has digest`));
    assert.deepEqual((await readdir(join(dir, 'dst'))).sort(), ['blobs', 'oci-layout'], 'nothing tagged');
    assert.deepEqual(await readdir(join(dir, 'dst', 'blobs')), ['sha256'], 'no sha512 directory left behind');
  });

  it('refuses blobs whose digest algorithm cannot be checked instead of passing them on', async (t) => {
    const dir = await tempDir(t);
    const layer = pseudoRandom(1000, 9);
    const blake3 = `blake3:${'ab'.repeat(32)}`;
    await layoutWithLayer(join(dir, 'src'), layer, blake3);
    const v = await runCli(['verify', `oci:${join(dir, 'src')}:v1`]);
    assert.equal(v.code, 1, v.stderr);
    assert.match(v.stderr, new RegExp(`blob ${blake3}: digest algorithm "blake3" cannot be checked \\(supported: sha256, sha384, sha512\\)`));
    await mkdir(join(dir, 'dst'));
    const c = await runCli(['copy', `oci:${join(dir, 'src')}:v1`, `oci:${join(dir, 'dst')}:v1`]);
    assert.equal(c.code, 1, c.stderr);
    assert.match(c.stderr, /digest algorithm "blake3" cannot be checked/);
    assert.ok(!(await readdir(join(dir, 'dst'))).includes('index.json'));
  });

  it('hashes with the expected algorithm, and refuses a digest that does not fit it', async () => {
    const data = pseudoRandom(70_000, 3);
    const run = async (digest: string, bytes = data): Promise<unknown> => {
      const s = new DigestStream({ digest, size: bytes.length });
      try {
        for await (const _ of Readable.from([bytes]).pipe(s)) void _;
        return s.digestResult.digest;
      } catch (err) {
        return err;
      }
    };
    for (const alg of ['sha256', 'sha384', 'sha512']) {
      assert.equal(await run(digestOf(alg, data)), digestOf(alg, data), alg);
      const other = Buffer.from(data);
      other[5]! ^= 0x80;
      const e = await run(digestOf(alg, data), other);
      assert.ok(isOciError(e, 'DIGEST_MISMATCH'), `${alg}: ${String(e)}`);
    }
    const short = await run(`sha512:${'a'.repeat(64)}`);
    assert.ok(isOciError(short, 'INVALID_FORMAT') && /not a valid sha512 digest \(expected 128 lowercase hex characters\)/.test(short.message), String(short));
    assert.ok(isOciError(await run(`md5:${'a'.repeat(32)}`), 'UNSUPPORTED'));
  });

  it('stores a pushed sha512 blob only when its bytes match', async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'lay'));
    const layout = await OciLayout.open(join(dir, 'lay'), { create: true });
    const data = pseudoRandom(5000, 4);
    const desc = { mediaType: MediaType.octetStream, digest: digestOf('sha512', data), size: data.length };
    await assert.rejects(layout.push(desc, Readable.from([pseudoRandom(5000, 5)])), (e) => isOciError(e, 'DIGEST_MISMATCH'));
    await layout.push(desc, Readable.from([data]));
    assert.ok((await readFile(join(dir, 'lay', 'blobs', 'sha512', desc.digest.slice(7)))).equals(data));
    assert.deepEqual(await readdir(join(dir, 'lay', 'blobs', 'sha256')), [], 'not stored under its sha256 name');
    await layout.abort();
    assert.deepEqual(await readdir(join(dir, 'lay', 'blobs')), ['sha256'], 'abort removes the blob and the directory it needed');
  });
});

describe('small content read whole', () => {
  it('gives fetchAll the bytes of a manifest in one read, and a changed, longer, shorter or missing file fails', async (t) => {
    const dir = await tempDir(t);
    await layoutWithLayer(dir, pseudoRandom(1000, 10), digestOf('sha256', pseudoRandom(1000, 10)));
    const layout = await OciLayout.open(dir);
    assert.ok(isWholeReader(layout), 'a layout reads small content whole');
    const desc = (await layout.readIndex()).manifests[0]!;
    const file = layout.blobPath(desc.digest);
    const manifest = await readFile(file);
    const read = () => fetchAll(layout, desc, { cap: MAX_MANIFEST_BYTES });
    const wholeReads = t.mock.method(layout, 'readWhole');
    assert.ok((await read()).equals(manifest));
    assert.equal(wholeReads.mock.callCount(), 1, 'fetchAll read the file whole, not as a stream');

    const changed = Buffer.from(manifest);
    changed[5]! ^= 0x01;
    const cases: Array<[string, Buffer | undefined, ErrorCode]> = [
      ['a byte changed', changed, 'DIGEST_MISMATCH'],
      ['a byte more', Buffer.concat([manifest, Buffer.from('\n')]), 'SIZE_MISMATCH'],
      ['a byte fewer', manifest.subarray(1), 'SIZE_MISMATCH'],
      ['removed', undefined, 'NOT_FOUND'],
    ];
    for (const [what, bytes, code] of cases) {
      if (bytes) await writeFile(file, bytes);
      else await rm(file);
      await assert.rejects(read(), (e) => isOciError(e, code), what);
    }
  });
});

describe('malformed index.json', () => {
  const manifest = `sha256:${'1'.repeat(64)}`;
  const cases: Array<[string, unknown, RegExp]> = [
    ['null', null, /index\.json is not a JSON object$/],
    ['an array', [], /index\.json is not a JSON object$/],
    ['no manifests', {}, /index\.json has no manifests array$/],
    ['a null entry', { manifests: [null] }, /index\.json: manifests\[0\] is null, not a descriptor object$/],
    ['a string entry', { manifests: ['x'] }, /index\.json: manifests\[0\] is a string, not a descriptor object$/],
    ['an entry without mediaType', { manifests: [{ digest: manifest, size: 10 }] }, /index\.json: manifests\[0\] has no mediaType$/],
    [
      'an entry without digest',
      {
        manifests: [
          { mediaType: MediaType.ociManifest, digest: manifest, size: 1 },
          { mediaType: MediaType.ociManifest, size: 10 },
        ],
      },
      /index\.json: manifests\[1\] has no valid digest \(missing\)$/,
    ],
    [
      'an entry with a bad digest',
      { manifests: [{ mediaType: MediaType.ociManifest, digest: 'sha256', size: 10 }] },
      /index\.json: manifests\[0\] has no valid digest \("sha256"\)$/,
    ],
    [
      'an entry without size',
      { manifests: [{ mediaType: MediaType.ociManifest, digest: manifest }] },
      /index\.json: manifests\[0\] has no valid size \(missing\)$/,
    ],
    [
      'annotations that are no object',
      { manifests: [{ mediaType: MediaType.ociManifest, digest: manifest, size: 3, annotations: null }] },
      /index\.json: manifests\[0\] has annotations that are not an object$/,
    ],
  ];

  it('fails with INVALID_ARGUMENT (an invalid layout is invalid input, exit 2) naming the file and what is wrong', async (t) => {
    const dir = await tempDir(t);
    for (const [what, index, message] of cases) {
      const lay = join(dir, what.replace(/ /g, '-'));
      await mkdir(lay);
      await writeFile(join(lay, 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}\n');
      await writeFile(join(lay, 'index.json'), JSON.stringify(index));
      const layout = await OciLayout.open(lay);
      await assert.rejects(layout.resolve('v1'), (e) => {
        assert.ok(isOciError(e, 'INVALID_ARGUMENT'), `${what}: ${String(e)}`);
        assert.ok(e.message.startsWith(join(lay, 'index.json')), `${what}: ${e.message}`);
        assert.match(e.message, message, what);
        return true;
      });
    }
    const r = await runCli(['verify', `oci:${join(dir, 'a-null-entry')}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /manifests\[0\] is null, not a descriptor object/);
  });

  it('names the archive, not the directory it was extracted to', async (t) => {
    const dir = await tempDir(t);
    const lay = join(dir, 'lay');
    await mkdir(join(lay, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(lay, 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}\n');
    await writeFile(join(lay, 'index.json'), JSON.stringify({ manifests: [null] }));
    const file = join(dir, 'image.tar');
    await packLayout(lay, file);
    await assert.rejects(openLocationForReading(`oci-archive:${file}`), (e) => {
      assert.ok(isOciError(e, 'INVALID_ARGUMENT'), String(e));
      assert.equal(e.message, `${file}: index.json: manifests[0] is null, not a descriptor object`);
      return true;
    });
  });
});
