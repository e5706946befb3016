/**
 * Ctrl-C during copy and verify, in a real process: the first SIGINT stops
 * the work, a second one right behind it must not cut the cleanup short.
 * Whatever was interrupted, nothing is left behind: no partial blob, no
 * temporary layout beside an archive, no unpacked archive in TMPDIR, nothing
 * in a new layout (at most its empty skeleton: oci-layout, blobs/sha256),
 * and an existing destination stays byte for byte.
 *
 * The image has one 384 MiB layer of zeros, written as a sparse file (a hole
 * costs no disk), so there is time to interrupt it mid-blob; the archive
 * made of it is sparse too.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { canonicalJson } from '../../src/oci/json.js';
import { cliPath, runCli, tempDir } from '../helpers/cli.js';

const layerSize = 384 * 1024 * 1024;
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let zerosDigest: string | undefined;
function digestOfZeros(): string {
  if (!zerosDigest) {
    const h = createHash('sha256');
    const mib = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < layerSize / mib.length; i++) h.update(mib);
    zerosDigest = `sha256:${h.digest('hex')}`;
  }
  return zerosDigest;
}

/** The files of a one-layer container image layout (tag `v1`), the layer given by size and digest only. */
function imageFiles(): { small: Record<string, Buffer>; layer: { name: string; digest: string } } {
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOfZeros(), size: layerSize };
  const config = canonicalJson({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } });
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length };
  const manifest = canonicalJson({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: [layer] });
  const index = canonicalJson({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha256(manifest),
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': 'v1' },
      },
    ],
  });
  const blob = (d: string): string => `blobs/sha256/${d.slice('sha256:'.length)}`;
  return {
    small: {
      'oci-layout': Buffer.from('{"imageLayoutVersion":"1.0.0"}'),
      'index.json': index,
      [blob(configDesc.digest)]: config,
      [blob(sha256(manifest))]: manifest,
    },
    layer: { name: blob(layer.digest), digest: layer.digest },
  };
}

/** Writes the image as a layout directory. */
async function writeBigLayout(dir: string): Promise<void> {
  const { small, layer } = imageFiles();
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [name, data] of Object.entries(small)) await writeFile(join(dir, name), data);
  await writeFile(join(dir, layer.name), '');
  await truncate(join(dir, layer.name), layerSize);
}

/** A ustar header for a regular file. */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => {
    h.write(value.padEnd(length, '\0').slice(0, length), offset, 'latin1');
  };
  const octal = (n: number, length: number): string => n.toString(8).padStart(length - 1, '0');
  field(0, 100, name);
  field(100, 8, octal(0o644, 8));
  field(108, 8, octal(0, 8));
  field(116, 8, octal(0, 8));
  field(124, 12, octal(size, 12));
  field(136, 12, octal(0, 12));
  field(148, 8, ' '.repeat(8));
  field(156, 1, '0');
  field(257, 6, 'ustar');
  field(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  field(148, 8, `${octal(sum, 7)}\0`);
  return h;
}

/** Writes the image as an oci-archive, the layer last and its zeros left as a hole. */
async function writeBigArchive(file: string): Promise<void> {
  const { small, layer } = imageFiles();
  const fh = await open(file, 'w');
  try {
    let at = 0;
    for (const [name, data] of Object.entries(small)) {
      await fh.write(tarHeader(name, data.length), 0, 512, at);
      await fh.write(data, 0, data.length, at + 512);
      at += 512 + Math.ceil(data.length / 512) * 512;
    }
    await fh.write(tarHeader(layer.name, layerSize), 0, 512, at);
    // The layer's zeros, then the two zero blocks that end an archive.
    await fh.truncate(at + 512 + layerSize + 1024);
  } finally {
    await fh.close();
  }
}

/** Every path below `dir` with its size (directories as -1), sorted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(e.parentPath ?? e.path, e.name);
    out.push(`${path.slice(dir.length)} ${e.isDirectory() ? -1 : (await stat(path)).size}`);
  }
  return out.sort();
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Starts `oci-os ARGS` with its own TMPDIR; once `ready()` holds, sends
 * SIGINT twice, 20 ms apart. Resolves with how it ended.
 */
async function interrupted(
  t: TestContext,
  args: string[],
  tmp: string,
  ready: () => Promise<boolean>,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let ended: string | undefined;
  const closed = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('close', (code, signal) => {
      ended = `code ${code}, signal ${signal}`;
      resolve({ code, signal });
    }),
  );
  for (let i = 0; i < 3000 && !ended && !(await ready()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(ended, undefined, `${args[0]} ended before it was interrupted: ${stderr}`);
  child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 20));
  if (!ended) child.kill('SIGINT');
  return { ...(await closed), stderr };
}

/** The copy is interrupted mid-blob: there is a temporary blob under `dir`'s .oci-os-tmp. */
async function writingBlob(dir: string): Promise<boolean> {
  return (await readdir(join(dir, '.oci-os-tmp')).catch(() => [] as string[])).some((n) => n.startsWith('blob-'));
}

test('Ctrl-C twice during a copy between layouts: exit code 1, nothing in the new layout, no partial blob, source untouched', async (t) => {
  const root = await tempDir(t);
  const tmp = join(root, 'tmp');
  await mkdir(tmp);
  await writeBigLayout(join(root, 'src'));
  const srcBefore = await tree(join(root, 'src'));
  const dest = join(root, 'dest');

  const r = await interrupted(t, ['copy', '-q', `oci:${join(root, 'src')}:v1`, `oci:${dest}:v1`], tmp, () => writingBlob(dest));
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
  // The second signal may come while the copy is still cleaning up: then a notice says so first.
  assert.match(
    r.stderr,
    /^(oci-os: interrupted; removing partial files before exiting \(once more to quit at once\)\n)?oci-os: error: copy interrupted; no tag was set\n$/,
  );
  const skeleton = (p: string): boolean => p === '/blobs -1' || p === '/blobs/sha256 -1' || p.startsWith('/oci-layout ');
  assert.deepEqual(
    ((await exists(dest)) ? await tree(dest) : []).filter((p) => !skeleton(p)),
    [],
    'no blob, no temporary file, no index.json',
  );
  assert.deepEqual(await readdir(tmp), []);
  assert.deepEqual(await tree(join(root, 'src')), srcBefore);
});

test('Ctrl-C twice during a copy to an existing oci-archive: the archive and its directory stay as they were', async (t) => {
  const root = await tempDir(t);
  const tmp = join(root, 'tmp');
  await mkdir(tmp);
  await writeBigLayout(join(root, 'src'));
  const out = join(root, 'out');
  await mkdir(out);
  await writeFile(join(root, 'small.img'), Buffer.from('a small payload\n'.repeat(64)));
  const small = await runCli(['build', '-p', `system=${join(root, 'small.img')}`, '-o', `oci-archive:${join(out, 'images.tar')}:old`]);
  assert.equal(small.code, 0, small.stderr);
  const archiveBefore = await readFile(join(out, 'images.tar'));
  const outBefore = await tree(out);

  const r = await interrupted(t, ['copy', '-q', `oci:${join(root, 'src')}:v1`, `oci-archive:${join(out, 'images.tar')}:v1`], tmp, async () => {
    const beside = (await readdir(out)).find((n) => n.startsWith('.images.tar.oci-os-'));
    return beside !== undefined && writingBlob(join(out, beside));
  });
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
  assert.match(r.stderr, /interrupted/);
  assert.deepEqual(await tree(out), outBefore, 'no temporary layout beside the archive');
  assert.ok((await readFile(join(out, 'images.tar'))).equals(archiveBefore), 'the archive is unchanged');
  assert.deepEqual(await readdir(tmp), []);
});

test('Ctrl-C twice while verify unpacks an oci-archive: exit code 1 and no unpacked archive left in TMPDIR', async (t) => {
  const root = await tempDir(t);
  const tmp = join(root, 'tmp');
  await mkdir(tmp);
  const archive = join(root, 'big.tar');
  await writeBigArchive(archive);
  const { layer } = imageFiles();

  // Interrupted while the layer is being extracted (a malformed archive would fail before: the child would end first).
  const r = await interrupted(t, ['verify', `oci-archive:${archive}`], tmp, async () => {
    const unpacking = (await readdir(tmp)).find((n) => n.startsWith('oci-os-archive-'));
    return unpacking !== undefined && exists(join(tmp, unpacking, layer.name));
  });
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
  assert.match(r.stderr, /interrupted/);
  assert.deepEqual(await readdir(tmp), [], 'the temporary directory the archive was unpacked to is removed');
});
