import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer } from '../../src/server/index.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { blobPath, sha256 } from './image-helpers.js';

// For an empty payload with compression on, Monogon's builder writes a 0-byte
// application/zstd blob, no zstd frame at all, and its reader accepts it
// (osimage-format.md, "Edge cases seen with Monogon's own code"). The layout
// below is written by hand the way that builder writes it: tab-indented
// JSON, chunk_hashes_sha256 null, one manifest in index.json whose
// artifactType is the config media type.

const tabbed = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v, null, '\t')}\n`);

async function monogonLayoutWithEmptyPayload(dir: string): Promise<{ manifestDigest: string; kernel: Buffer }> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    const d = sha256(b);
    await writeFile(blobPath(dir, d), b);
    return d;
  };
  const empty = Buffer.alloc(0);
  const kernel = Buffer.from('MZ kernel\n'.repeat(50));
  const config = tabbed({
    format_version: '1',
    product_info: { id: 'testos', name: 'Test OS', version: '1.0', variant: 'x86_64', commit_hash: '', commit_date: '', build_tree_dirty: false },
    payloads: [
      { name: 'system', size: 0, hash_chunk_size: 1048576, chunk_hashes_sha256: null },
      {
        name: 'kernel.efi',
        size: kernel.length,
        hash_chunk_size: 1048576,
        chunk_hashes_sha256: [createHash('sha256').update(kernel).digest('base64').replace(/=+$/, '')],
      },
    ],
  });
  const manifest = tabbed({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.monogon.os.image.v1',
    config: { mediaType: 'application/vnd.monogon.os.image.config.v1+json', digest: await put(config), size: config.length },
    layers: [
      { mediaType: 'application/zstd', digest: await put(empty), size: 0 },
      { mediaType: 'application/octet-stream', digest: await put(kernel), size: kernel.length },
    ],
  });
  const manifestDigest = await put(manifest);
  await writeFile(join(dir, 'oci-layout'), tabbed({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    tabbed({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          artifactType: 'application/vnd.monogon.os.image.config.v1+json',
        },
      ],
    }),
  );
  return { manifestDigest, kernel };
}

test('an empty payload stored as a 0-byte zstd blob, as Monogon builds it, verifies, extracts, inspects and pulls', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'monogon');
  const { kernel } = await monogonLayoutWithEmptyPayload(dir);
  const src = `oci:${dir}`;

  const verify = await runCli(['verify', src, '--json']);
  assert.equal(verify.code, 0, verify.stderr);
  const payloads = JSON.parse(verify.stdout).payloads as Array<{ name: string; size: number; compression: string }>;
  assert.deepEqual(
    payloads.map((p) => [p.name, p.size, p.compression]),
    [
      ['system', 0, 'zstd'],
      ['kernel.efi', kernel.length, 'none'],
    ],
  );

  const out = join(root, 'system.img');
  const extract = await runCli(['extract', src, '-p', 'system', '-o', out]);
  assert.equal(extract.code, 0, extract.stderr);
  assert.equal((await stat(out)).size, 0, 'an empty file');
  const kernelOut = join(root, 'kernel.efi');
  assert.equal((await runCli(['extract', src, '-p', 'kernel.efi', '-o', kernelOut])).code, 0);
  assert.deepEqual(await readFile(kernelOut), kernel);

  const inspect = await runCli(['inspect', src, '--json']);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /"system"/);

  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const pushed = await runCli(['copy', src, `${server.address}/os/empty:1`]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const pulled = await runCli(['pull', `${server.address}/os/empty:1`, '-o', `oci:${join(root, 'pulled')}:1`, '--json', '--verify-chunks']);
  assert.equal(pulled.code, 0, pulled.stderr);
  const report = JSON.parse(pulled.stdout);
  assert.deepEqual(
    report.verifiedPayloads.map((p: { name: string }) => p.name),
    ['system', 'kernel.efi'],
  );
  assert.equal((await stat(blobPath(join(root, 'pulled'), sha256(Buffer.alloc(0))))).size, 0);
});

/** Points the image's first layer at `blob` (stored as application/zstd); returns the location. */
async function withFirstLayer(dir: string, manifestDigest: string, blob: Buffer, edit?: (config: any) => void): Promise<string> {
  const manifest = JSON.parse(await readFile(blobPath(dir, manifestDigest), 'utf8'));
  if (edit) {
    const config = JSON.parse(await readFile(blobPath(dir, manifest.config.digest), 'utf8'));
    edit(config);
    const c = tabbed(config);
    await writeFile(blobPath(dir, sha256(c)), c);
    manifest.config = { ...manifest.config, digest: sha256(c), size: c.length };
  }
  await writeFile(blobPath(dir, sha256(blob)), blob);
  manifest.layers[0] = { mediaType: 'application/zstd', digest: sha256(blob), size: blob.length };
  const m = tabbed(manifest);
  await writeFile(blobPath(dir, sha256(m)), m);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  index.manifests[0] = { ...index.manifests[0], digest: sha256(m), size: m.length };
  await writeFile(join(dir, 'index.json'), tabbed(index));
  return `oci:${dir}`;
}

test("a 0-byte zstd blob stands for an empty payload only, and damage in an empty payload's blob is still caught", async (t) => {
  const root = await tempDir(t);
  // An empty payload whose blob is one byte that is no zstd frame: Monogon's reader never opens it, oci-os verify does.
  const junkDir = join(root, 'junk');
  const junk = await monogonLayoutWithEmptyPayload(junkDir);
  const r = await runCli(['verify', await withFirstLayer(junkDir, junk.manifestDigest, Buffer.from('x'))]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /payload "system" .*zstd/);

  // A payload of 5 bytes in a 0-byte zstd blob: the bytes are missing.
  const shortDir = join(root, 'short');
  const short = await monogonLayoutWithEmptyPayload(shortDir);
  const hash = createHash('sha256').update('hello').digest('base64').replace(/=+$/, '');
  const location = await withFirstLayer(shortDir, short.manifestDigest, Buffer.alloc(0), (c) => {
    c.payloads[0].size = 5;
    c.payloads[0].chunk_hashes_sha256 = [hash];
  });
  for (const args of [
    ['verify', location],
    ['extract', location, '-p', 'system', '-o', join(root, 'short.img')],
  ]) {
    const res = await runCli(args);
    assert.equal(res.code, 5, `${args[0]}: ${res.stderr}`);
    assert.match(res.stderr, /payload "system"/, args[0]);
  }
  await assert.rejects(stat(join(root, 'short.img')), 'no partial file');
});
