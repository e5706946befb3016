import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { call, sha, tempRegistry } from './helpers.js';

type Reg = Awaited<ReturnType<typeof tempRegistry>>;

/** A one-file ustar archive. */
function tarOf(name: string, content: string): Buffer {
  const data = Buffer.from(content);
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 'ascii');
  header.write('0000000\0', 108, 'ascii');
  header.write('0000000\0', 116, 'ascii');
  header.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  header.write('00000000000\0', 136, 'ascii');
  header.write('        ', 148, 'ascii');
  header.write('0', 156, 'ascii');
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

interface Layout {
  dir: string;
  manifest: Buffer;
  blobs: Map<string, Buffer>;
}

/** Writes an OCI image layout with one tagged image (config + two gzip layers). */
async function writeLayout(dir: string, tag: string): Promise<Layout> {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer): { digest: string; size: number } => {
    blobs.set(sha(b), b);
    return { digest: sha(b), size: b.length };
  };
  const tars = [tarOf('etc/os-release', 'ID=oci-os-test\n'), tarOf('usr/share/hello.txt', 'hello from layer two\n')];
  const layers = tars.map((t) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(gzipSync(t)) }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: tars.map((t) => sha(t)) },
      history: [{ created_by: 'layer one' }, { created_by: 'layer two' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
      layers,
    }),
  );
  const manifestDesc = put(manifest);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [digest, bytes] of blobs) await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifestDesc,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  blobs.delete(manifestDesc.digest);
  return { dir, manifest, blobs };
}

describe('registry server: skopeo copy in and out', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'oci-os-skopeo-test-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function roundTrip(reg: Reg, creds: string[], label: string): Promise<void> {
    const src = await writeLayout(join(work, `${label}-src`), 'v1');
    const ref = `docker://${reg.address}/some/repo:v1`;
    await skopeo(['--insecure-policy', 'copy', '--dest-tls-verify=false', ...creds.map((c) => `--dest-${c}`), `oci:${src.dir}:v1`, ref]);

    const auth: Record<string, string> = creds.length ? { authorization: `Basic ${Buffer.from(creds[0]!.split('=')[1]!).toString('base64')}` } : {};
    const stored = await call(reg, 'GET', '/v2/some/repo/manifests/v1', { headers: auth });
    assert.equal(stored.status, 200);
    assert.equal(stored.text, src.manifest.toString(), 'manifest stored byte for byte');
    for (const [digest, bytes] of src.blobs) {
      const blob = await call(reg, 'GET', `/v2/some/repo/blobs/${digest}`, { headers: auth });
      assert.equal(blob.status, 200, digest);
      assert.deepEqual(blob.bytes, bytes, digest);
    }
    for (const digest of src.blobs.keys()) {
      assert.deepEqual(await readFile(join(reg.root, 'blobs', 'sha256', digest.slice(7))), src.blobs.get(digest));
    }

    const inspected = await skopeo(['--insecure-policy', 'inspect', '--raw', '--tls-verify=false', ...creds.map((c) => `--${c}`), ref]);
    assert.equal(inspected.stdout, src.manifest.toString());

    const dst = join(work, `${label}-dst`);
    await skopeo(['--insecure-policy', 'copy', '--src-tls-verify=false', ...creds.map((c) => `--src-${c}`), ref, `oci:${dst}:v1`]);
    const index = JSON.parse(await readFile(join(dst, 'index.json'), 'utf8'));
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0].digest, sha(src.manifest));
    assert.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], 'v1');
    assert.deepEqual(await readFile(join(dst, 'blobs', 'sha256', sha(src.manifest).slice(7))), src.manifest);
    for (const [digest, bytes] of src.blobs) {
      assert.deepEqual(await readFile(join(dst, 'blobs', 'sha256', digest.slice(7))), bytes, digest);
    }
  }

  it('pushes an OCI layout with skopeo, serves it back byte for byte, and skopeo pulls it out again', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const reg = await tempRegistry();
    try {
      await roundTrip(reg, [], 'plain');
    } finally {
      await reg.stop();
    }
  });

  it('does the same round trip with Basic credentials', async (t) => {
    if (!requireTools(t, 'skopeo')) return;
    const htpasswd = join(work, 'htpasswd');
    await writeFile(htpasswd, `pusher:${bcrypt.hashSync('pass-word', 4)}\n`);
    const reg = await tempRegistry({ htpasswdFile: htpasswd });
    try {
      await assert.rejects(
        skopeo(['--insecure-policy', 'inspect', '--raw', '--tls-verify=false', `docker://${reg.address}/some/repo:v1`]),
        /401|unauthorized|authentication/i,
      );
      await roundTrip(reg, ['creds=pusher:pass-word'], 'auth');
    } finally {
      await reg.stop();
    }
  });
});
