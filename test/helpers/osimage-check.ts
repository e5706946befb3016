import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeChunkHash } from '../../src/osimage/format.js';

/**
 * Checks an OS image in an OCI layout with tools independent of oci-os:
 * every payload blob decompresses (zstd CLI) to the original bytes, and the
 * config's chunk hashes are the SHA-256 of each 1 MiB of them. Returns the manifest.
 */
export async function checkOsImageLayout(
  dir: string,
  manifestDigest: string,
  originals: Array<{ name: string; data: Buffer }>,
): Promise<{ manifest: Record<string, any>; config: Record<string, any> }> {
  const blob = (d: string) => join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const manifestBytes = await readFile(blob(manifestDigest));
  assert.equal(`sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`, manifestDigest);
  const manifest = JSON.parse(manifestBytes.toString());
  assert.equal(manifest.artifactType, 'application/vnd.monogon.os.image.v1');
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8'));
  assert.equal(config.payloads.length, originals.length);
  for (const [i, layer] of manifest.layers.entries()) {
    const { name, data } = originals[i]!;
    assert.equal(config.payloads[i].name, name);
    let bytes: Buffer;
    if (layer.mediaType === 'application/zstd') {
      const d = spawnSync('zstd', ['-d', '-c', blob(layer.digest)], { maxBuffer: 256 << 20 });
      assert.equal(d.status, 0, d.stderr.toString());
      bytes = d.stdout;
    } else {
      bytes = await readFile(blob(layer.digest));
    }
    assert.ok(bytes.equals(data), `payload ${name} restores to the original bytes`);
    const chunk = config.payloads[i].hash_chunk_size;
    const hashes: string[] = [];
    for (let off = 0; off < bytes.length; off += chunk) {
      hashes.push(
        createHash('sha256')
          .update(bytes.subarray(off, off + chunk))
          .digest('base64')
          .replace(/=+$/, ''),
      );
    }
    assert.deepEqual(config.payloads[i].chunk_hashes_sha256 ?? [], hashes, `chunk hashes of ${name}`);
    assert.equal(config.payloads[i].size, data.length);
  }
  return { manifest, config };
}

/** The config's chunk hashes of `data`: the SHA-256 of each `chunk` bytes, computed here rather than by the builder. */
export function chunkHashesOf(data: Buffer, chunk: number): string[] {
  const out: string[] = [];
  for (let off = 0; off < data.length; off += chunk)
    out.push(
      encodeChunkHash(
        createHash('sha256')
          .update(data.subarray(off, off + chunk))
          .digest(),
      ),
    );
  return out;
}
