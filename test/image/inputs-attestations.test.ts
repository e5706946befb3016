import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: object;
  annotations?: Record<string, string>;
}

test('image index carries the attestation manifests of a buildx-style index over as they are, without reading them as images', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'tree'));
  await writeFile(join(dir, 'tree', 'hello'), 'hello\n');
  const layout = join(dir, 'src');
  for (const [platform, tag] of [
    ['linux/amd64', 'amd64'],
    ['linux/arm64', 'arm64'],
  ]) {
    const b = await runCli(['image', 'build', '--rootfs', join(dir, 'tree'), '--platform', platform!, '--output', `oci:${layout}:${tag}`]);
    assert.equal(b.code, 0, b.stderr);
  }
  const put = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(layout, 'blobs', 'sha256', hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Desc[] };
  const images = ['amd64', 'arm64'].map((tag) => top.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!);
  // What buildx writes beside each image: a provenance statement as an in-toto layer, platform unknown/unknown.
  const attestations: Desc[] = [];
  const blobs: Array<{ digest: string }> = [];
  for (const image of images) {
    const statement = await put(
      Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', subject: [{ digest: { sha256: image.digest.slice(7) } }] })),
    );
    const config = await put(Buffer.from(JSON.stringify({ architecture: 'unknown', os: 'unknown', rootfs: { type: 'layers', diff_ids: [statement.digest] } })));
    blobs.push(statement, config);
    const manifest = await put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [
            { mediaType: 'application/vnd.in-toto+json', ...statement, annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } },
          ],
        }),
      ),
    );
    attestations.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture: 'unknown', os: 'unknown' },
      annotations: { 'vnd.docker.reference.digest': image.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
    });
  }
  const platforms = [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux' },
  ];
  const imageEntries = images.map((m, i) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: platforms[i] }));
  const index = await put(
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [...imageEntries, ...attestations] })),
  );
  top.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': 'multi' } });
  await writeFile(join(layout, 'index.json'), JSON.stringify(top));

  const out = join(dir, 'out');
  const r = await runCli(['image', 'index', '--output', `oci:${out}:v1`, `oci:${layout}:multi`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const digest = JSON.parse(r.stdout).digest as string;
  const written = JSON.parse(await readFile(join(out, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { manifests: Desc[] };
  assert.deepEqual(written.manifests, [...imageEntries, ...attestations]);
  for (const d of [...attestations, ...blobs]) await access(join(out, 'blobs', 'sha256', d.digest.slice(7)));
});
