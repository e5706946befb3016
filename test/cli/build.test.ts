import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, repoRoot, runCli, tempDir } from '../helpers/cli.js';
import { checkOsImageLayout } from '../helpers/osimage-check.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';

const fixture = (...p: string[]) => join(repoRoot, 'fixtures', ...p);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function blobs(dir: string): Promise<string[]> {
  return (await readdir(join(dir, 'blobs', 'sha256'))).sort();
}

test('uncompressed build without titles reproduces the reference manifest byte for byte', async (t) => {
  const dir = await tempDir(t);
  const r = await runCli([
    'build',
    '-p',
    `system=${fixture('payloads', 'system.img')}`,
    '-p',
    `kernel.efi=${fixture('payloads', 'kernel.efi')}`,
    '--product-info',
    fixture('product-info.json'),
    '--compression',
    'none',
    '--no-layer-titles',
    '-o',
    `oci:${join(dir, 'img')}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const goldenManifest = await readFile(fixture('golden', 'manifest-uncompressed.json'));
  assert.equal(r.stdout.trim(), `sha256:${sha256(goldenManifest)}`);
  const stored = await readFile(join(dir, 'img', 'blobs', 'sha256', sha256(goldenManifest)));
  assert.ok(stored.equals(goldenManifest));
  const config = await readFile(join(dir, 'img', 'blobs', 'sha256', sha256(await readFile(fixture('golden', 'config.json')))));
  assert.ok(config.equals(await readFile(fixture('golden', 'config.json'))));
  assert.equal(await readFile(join(dir, 'img', 'oci-layout'), 'utf8'), '{"imageLayoutVersion": "1.0.0"}\n');
  const index = JSON.parse(await readFile(join(dir, 'img', 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], 'latest');
  assert.equal(index.manifests[0].artifactType, 'application/vnd.monogon.os.image.config.v1+json');
});

test('zstd build: skopeo reads and copies it, zstd -d restores every payload, chunk hashes match', async (t) => {
  if (!requireTools(t, 'skopeo', 'zstd')) return;
  const dir = await tempDir(t);
  const big = pseudoRandom(9 * (1 << 20) + 777, 42, true);
  await writeFile(join(dir, 'system.img'), big);
  const r = await runCli([
    'build',
    '-p',
    `system=${join(dir, 'system.img')}`,
    '-p',
    `kernel.efi=${fixture('payloads', 'kernel.efi')}`,
    '-o',
    `oci:${join(dir, 'img')}:v1`,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.output, `oci:${join(dir, 'img')}:v1`);
  assert.equal(out.artifactType, 'application/vnd.monogon.os.image.v1');
  assert.deepEqual(
    out.payloads.map((p: { name: string }) => p.name),
    ['system', 'kernel.efi'],
  );
  assert.equal(out.payloads[0].chunkCount, 10);

  const raw = await skopeo(['inspect', '--raw', `oci:${join(dir, 'img')}:v1`]);
  const manifestBytes = await readFile(join(dir, 'img', 'blobs', 'sha256', out.digest.slice(7)));
  assert.equal(raw.stdout, manifestBytes.toString());
  const manifest = JSON.parse(raw.stdout);
  assert.deepEqual(
    manifest.layers.map((l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title']),
    ['system.zst', 'kernel.efi.zst'],
  );

  await skopeo(['copy', `oci:${join(dir, 'img')}:v1`, `oci:${join(dir, 'copy')}:v1`]);
  const copied = await skopeo(['inspect', '--raw', `oci:${join(dir, 'copy')}:v1`]);
  assert.equal(copied.stdout, raw.stdout, 'skopeo copies the manifest unchanged');

  await checkOsImageLayout(join(dir, 'copy'), out.digest, [
    { name: 'system', data: big },
    { name: 'kernel.efi', data: await readFile(fixture('payloads', 'kernel.efi')) },
  ]);
});

test('same inputs give the same bytes; oci-archive output is a deterministic tar skopeo reads', async (t) => {
  if (!requireTools(t, 'skopeo')) return;
  const dir = await tempDir(t);
  const args = (out: string) => ['build', '-p', `system=${fixture('payloads', 'system.img')}`, '--variant', 'x86_64', '-o', out];
  const a = await runCli(args(`oci:${join(dir, 'a')}`));
  const b = await runCli(args(`oci:${join(dir, 'b')}`));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.deepEqual(await blobs(join(dir, 'a')), await blobs(join(dir, 'b')));
  const c = await runCli(args(`oci-archive:${join(dir, 'a.tar')}:rel`));
  await new Promise((r) => setTimeout(r, 1100)); // a different wall clock second must not matter
  const d = await runCli(args(`oci-archive:${join(dir, 'b.tar')}:rel`));
  assert.equal(c.code, 0, c.stderr);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(c.stdout, a.stdout);
  assert.ok((await readFile(join(dir, 'a.tar'))).equals(await readFile(join(dir, 'b.tar'))), 'archives are byte-identical');
  const raw = await skopeo(['inspect', '--raw', `oci-archive:${join(dir, 'a.tar')}:rel`]);
  assert.equal(`sha256:${sha256(Buffer.from(raw.stdout))}`, c.stdout.trim());
  const tarList = spawnSync('tar', ['-tvf', join(dir, 'a.tar')]).stdout.toString();
  assert.match(tarList, /root\/root|0\/0/);
  assert.doesNotMatch(tarList, /oci-os-tmp/);
  // Adding a tag to an existing archive keeps the first image.
  const e = await runCli(['build', '-p', `kernel.efi=${fixture('payloads', 'kernel.efi')}`, '-o', `oci-archive:${join(dir, 'a.tar')}:k`]);
  assert.equal(e.code, 0, e.stderr);
  await skopeo(['inspect', '--raw', `oci-archive:${join(dir, 'a.tar')}:rel`]);
  await skopeo(['inspect', '--raw', `oci-archive:${join(dir, 'a.tar')}:k`]);
});

test('an existing layout keeps its other images and a tag built again is moved', async (t) => {
  const dir = await tempDir(t);
  const lay = join(dir, 'lay');
  const build = (payload: string, tag: string) => runCli(['build', '-p', `system=${payload}`, '-o', `oci:${lay}:${tag}`]);
  const one = await build(fixture('payloads', 'system.img'), 'one');
  const two = await build(fixture('payloads', 'kernel.efi'), 'two');
  const again = await build(fixture('payloads', 'kernel.efi'), 'one');
  for (const r of [one, two, again]) assert.equal(r.code, 0, r.stderr);
  const index = JSON.parse(await readFile(join(lay, 'index.json'), 'utf8'));
  const byTag = Object.fromEntries(
    index.manifests.map((m: { digest: string; annotations: Record<string, string> }) => [m.annotations['org.opencontainers.image.ref.name'], m.digest]),
  );
  assert.equal(index.manifests.length, 2, 'the tag was moved, not duplicated');
  assert.equal(byTag.one, again.stdout.trim());
  assert.equal(byTag.two, two.stdout.trim());
  assert.equal(again.stdout, two.stdout, 'same payload, same digest');
  assert.deepEqual(await readdir(lay).then((l) => l.sort()), ['blobs', 'index.json', 'oci-layout']);
});

test('bad input fails with one line, a stable exit code, and no change to the layout', async (t) => {
  const dir = await tempDir(t);
  const lay = join(dir, 'lay');
  const ok = await runCli(['build', '-p', `system=${fixture('payloads', 'kernel.efi')}`, '-o', `oci:${lay}:keep`]);
  assert.equal(ok.code, 0, ok.stderr);
  const indexBefore = await readFile(join(lay, 'index.json'));
  const blobsBefore = await blobs(lay);
  await writeFile(join(dir, 'bad-product.json'), '{"id":"x","colour":"red"}');
  await mkdir(join(dir, 'ro'));
  await chmod(join(dir, 'ro'), 0o500);
  const sys = `system=${fixture('payloads', 'system.img')}`;
  const cases: Array<{ args: string[]; code: number; match: RegExp }> = [
    { args: ['-p', `system=${join(dir, 'missing.img')}`], code: 1, match: /cannot read .*missing\.img: no such file/ },
    { args: ['-p', `system=${dir}`], code: 1, match: /is a directory/ },
    { args: ['-p', 'bad name=x'], code: 2, match: /invalid payload name "bad name"/ },
    { args: ['-p', sys, '-p', sys], code: 2, match: /"system" is given twice/ },
    { args: ['-p', 'noequals'], code: 2, match: /NAME=PATH/ },
    { args: [], code: 2, match: /no payloads given/ },
    { args: ['-p', sys, '--compression-level', '0'], code: 2, match: /compression-level/ },
    { args: ['-p', sys, '--hash-chunk-size', '0'], code: 2, match: /hash chunk size 0/ },
    { args: ['-p', sys, '--hash-chunk-size', '17MiB'], code: 2, match: /at most 16MiB/ },
    { args: ['-p', sys, '--hash-chunk-size', 'lots'], code: 2, match: /invalid hash chunk size "lots"/ },
    { args: ['-p', sys, '--frame-size', '1500000'], code: 2, match: /multiple of the hash chunk size/ },
    { args: ['-p', sys, '--product-info', join(dir, 'bad-product.json')], code: 2, match: /unknown key "colour"/ },
    { args: ['-p', sys, '--variant', 'x86/64'], code: 2, match: /invalid variant/ },
    { args: ['-p', sys, '--output', 'docker://x'], code: 2, match: /use oci:DIR\[:TAG\] or oci-archive:FILE\[:TAG\]/ },
    { args: ['-p', sys, '--output', `oci:${lay}:bad:tag!`], code: 2, match: /invalid tag/ },
  ];
  for (const c of cases) {
    const args = ['build', ...c.args];
    if (!c.args.includes('--output')) args.push('--output', `oci:${lay}:new`);
    const r = await runCli(args);
    assert.equal(r.code, c.code, `${c.args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, c.match);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, /^oci-os: error: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '');
  }
  if (process.getuid?.() !== 0) {
    const r = await runCli(['build', '-p', sys, '-o', `oci:${join(dir, 'ro', 'x')}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot write .*permission denied/);
  }
  const unwritable = await runCli(['build', '-p', sys, '-o', `oci:${join(fixture('payloads', 'kernel.efi'), 'sub')}`]);
  assert.equal(unwritable.code, 1, unwritable.stderr);
  assert.match(unwritable.stderr, /cannot (write|read) /);
  assert.ok((await readFile(join(lay, 'index.json'))).equals(indexBefore), 'index.json untouched');
  assert.deepEqual(await blobs(lay), blobsBefore, 'no new blobs');
  const json = await runCli(['build', '-p', 'bad name=x', '-o', `oci:${lay}`, '--json']);
  assert.equal(json.code, 2);
  assert.equal(JSON.parse(json.stdout).error.code, 'INVALID_PAYLOAD_NAME');
  const debug = await runCli(['build', '-p', `system=${join(dir, 'missing.img')}`, '-o', `oci:${lay}`, '--debug']);
  assert.match(debug.stderr, /\n\s+at /, '--debug shows the stack');
});
