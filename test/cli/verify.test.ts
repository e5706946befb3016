import assert from 'node:assert/strict';
import { cp, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { containerImage, writeLayout } from '../copy/fixtures.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { blobPath, buildImage, editConfig, KiB } from './image-helpers.js';

test('verify passes an intact OS image and catches a flipped byte, a truncated blob and a wrong chunk hash, naming the place', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { compression: 'none', size: 10 * 64 * KiB + 999 });
  const system = img.payloads.find((p) => p.name === 'system')!;

  const ok = await runCli(['verify', img.location, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(ok.stdout);
  assert.equal(report.digest, img.digest);
  assert.deepEqual(
    report.payloads.map((p: { name: string; chunks: number }) => [p.name, p.chunks]),
    [
      ['system', 11],
      ['kernel.efi', 1],
    ],
  );

  const copyOf = async (name: string): Promise<string> => {
    const dir = join(root, name);
    await cp(img.dir, dir, { recursive: true });
    return dir;
  };

  // One flipped byte in chunk 7 of the uncompressed payload.
  const flipped = await copyOf('flipped');
  const bytes = await readFile(blobPath(flipped, system.digest));
  bytes[7 * 64 * KiB + 4321]! ^= 0x01;
  await writeFile(blobPath(flipped, system.digest), bytes);
  const f = await runCli(['verify', `oci:${flipped}:v1`]);
  assert.equal(f.code, 5, f.stderr);
  assert.match(f.stderr, /payload "system": chunk 7 at byte offset 458752 does not match its hash/);

  // A truncated blob: the stream is short.
  const short = await copyOf('short');
  await truncate(blobPath(short, system.digest), 5 * 64 * KiB + 10);
  const s = await runCli(['verify', `oci:${short}:v1`, '--json']);
  assert.equal(s.code, 5);
  const err = JSON.parse(s.stdout).error;
  assert.equal(err.code, 'SIZE_MISMATCH');
  assert.match(err.message, new RegExp(`payload "system" \\(blob ${system.digest}\\).*got 327690 bytes, expected ${system.blobSize}`));

  // A wrong chunk hash with config, manifest and index rewritten consistently: only the chunk check can tell.
  const wrong = await copyOf('wrong');
  await editConfig(wrong, img.digest, (c) => {
    c.payloads[0].chunk_hashes_sha256[3] = c.payloads[0].chunk_hashes_sha256[2];
  });
  const w = await runCli(['verify', `oci:${wrong}:v1`]);
  assert.equal(w.code, 5, w.stderr);
  assert.match(w.stderr, /payload "system": chunk 3 at byte offset 196608 does not match its hash/);
});

test('verify catches a flipped byte in a zstd payload and names the payload', async (t) => {
  const root = await tempDir(t);
  const img = await buildImage(root, { size: 900 * KiB, frame: '256KiB' });
  const system = img.payloads.find((p) => p.name === 'system')!;
  const bytes = await readFile(blobPath(img.dir, system.digest));
  bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
  await writeFile(blobPath(img.dir, system.digest), bytes);
  const r = await runCli(['verify', img.location]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /payload "system"/);
  assert.match(r.stderr, /chunk \d+ at byte offset \d+/);
});

test('verify re-hashes every blob of a container image', async (t) => {
  const root = await tempDir(t);
  const image = await containerImage('amd64', { layers: 2, layerSize: 100_000 });
  await writeLayout(join(root, 'c'), image.manifest, image.blobs, 'v1');
  const ok = await runCli(['verify', `oci:${join(root, 'c')}:v1`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /ok — 1 manifest\(s\), 3 blob\(s\)/);
  const layer = image.blobs[2]!;
  const bad = Buffer.from(layer.bytes);
  bad[50]! ^= 0xff;
  await writeFile(blobPath(join(root, 'c'), layer.desc.digest), bad);
  const r = await runCli(['verify', `oci:${join(root, 'c')}:v1`]);
  assert.equal(r.code, 5);
  assert.match(r.stderr, new RegExp(`blob ${layer.desc.digest}: content has digest sha256:[0-9a-f]{64}, expected ${layer.desc.digest}`));
});

test('verify names the frame that failed in a zstd payload: no frame where one starts, or a blob cut short there', async (t) => {
  const root = await tempDir(t);
  // Frames of 256 KiB hold 4 chunks of 64 KiB each: frame 3 starts at chunk 12.
  const img = await buildImage(root, { size: 24 * 64 * KiB, frame: '256KiB' });
  const system = img.payloads.find((p) => p.name === 'system')!;
  const blob = await readFile(blobPath(img.dir, system.digest));
  // Frame offsets from the seek table at the end of the blob (zstd seekable format: 8 bytes per frame, no checksums).
  const frames = blob.readUInt32LE(blob.length - 9);
  const table = blob.length - 9 - frames * 8;
  const frame3 = [0, 1, 2].reduce((off, i) => off + blob.readUInt32LE(table + i * 8), 0);
  const where = /payload "system" \(blob sha256:[0-9a-f]+\), chunk 12 at byte offset 786432: /;

  const bad = join(root, 'badmagic');
  await cp(img.dir, bad, { recursive: true });
  const broken = Buffer.from(blob);
  broken[frame3]! ^= 0xff;
  await writeFile(blobPath(bad, system.digest), broken);
  const m = await runCli(['verify', `oci:${bad}:v1`]);
  assert.equal(m.code, 5, m.stderr);
  assert.match(m.stderr, where);
  assert.match(m.stderr, new RegExp(`no zstd frame at compressed offset ${frame3}`));

  const cut = join(root, 'cut');
  await cp(img.dir, cut, { recursive: true });
  await truncate(blobPath(cut, system.digest), frame3 + 100);
  const c = await runCli(['verify', `oci:${cut}:v1`]);
  assert.equal(c.code, 5, c.stderr);
  assert.match(c.stderr, where);
});
