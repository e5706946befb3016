/**
 * build: what is refused before anything is written (a config over the
 * readers' limit, a digest destination, a payload that is no regular file,
 * an archive in a directory that takes no files), annotations as a map
 * (every key kept, order of the flags irrelevant), and SIGTERM/SIGINT
 * removing what an interrupted build wrote.
 */

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath, entriesLeft, pseudoRandom, runCli, runCliWithin, tempDir } from '../helpers/cli.js';

test('a config over the 50MiB readers accept is refused before anything is written, with a --hash-chunk-size that fits', async (t) => {
  const dir = await tempDir(t);
  const big = join(dir, 'big.img');
  await writeFile(big, '');
  await truncate(big, 20_000_000); // sparse: only its size matters, it is never read
  const r = await runCli(['build', '-p', `system=${big}`, '--hash-chunk-size', '16', '--compression', 'none', '-o', `oci:${join(dir, 'out')}`]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /the config would be 60\.8 MiB, more than the 50\.0 MiB readers accept: payload "system" \(19\.1 MiB\) alone has 1250000 hash chunks of 16 B/,
  );
  assert.match(r.stderr, /hint: use a larger --hash-chunk-size: at least 32 for these payloads/);
  assert.deepEqual(await entriesLeft(join(dir, 'out')), [], 'no layout was created');
  const json = await runCli(['build', '-p', `system=${big}`, '--hash-chunk-size', '16', '-o', `oci-archive:${join(dir, 'out.tar')}`, '--json']);
  assert.equal(json.code, 2);
  assert.equal(JSON.parse(json.stdout).error.code, 'USAGE');
  assert.deepEqual(await readdir(dir), ['big.img']);
});

test('a destination with a digest is a usage error and nothing is written', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'k.efi'), 'kernel');
  const digest = `sha256:${'0'.repeat(64)}`;
  for (const dest of [`oci:${join(dir, 'out')}@${digest}`, `oci-archive:${join(dir, 'out.tar')}@${digest}`]) {
    const r = await runCli(['build', '-p', `kernel.efi=${join(dir, 'k.efi')}`, '-o', dest]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /destination is named by tag .*, not by digest/);
  }
  assert.deepEqual(await readdir(dir), ['k.efi']);
});

test('payloads must be regular files: pipes and devices are refused up front, a symlink to a file is fine', async (t) => {
  const dir = await tempDir(t);
  const fifo = join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const out = join(dir, 'out');
  for (const [path, kind] of [
    ['/dev/null', 'a character device'],
    ['/dev/zero', 'a character device'],
    [fifo, 'a pipe'],
  ] as const) {
    const r = await runCliWithin(['build', '-p', `system=${path}`, '-o', `oci:${out}`], 20_000);
    assert.equal(r.timedOut, false, `${path}: the build never ended`);
    assert.equal(r.code, 2, `${path}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`payload "system": ${path} is not a regular file but ${kind}`), r.stderr);
    assert.deepEqual(await entriesLeft(out), []);
  }
  await writeFile(join(dir, 'k.efi'), 'kernel');
  await symlink(join(dir, 'k.efi'), join(dir, 'link.efi'));
  const ok = await runCli(['build', '-p', `kernel.efi=${join(dir, 'link.efi')}`, '-o', `oci:${out}`]);
  assert.equal(ok.code, 0, ok.stderr);
});

test("an oci-archive in a directory that cannot take it is reported by the archive's own path", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'k.efi'), 'kernel');
  for (const file of [join(dir, 'missing', 'x.tar'), join(dir, 'k.efi', 'x.tar'), '/proc/nope.tar']) {
    const r = await runCli(['build', '-p', `kernel.efi=${join(dir, 'k.efi')}`, '-o', `oci-archive:${file}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`oci-os: error: cannot write ${file}: `), r.stderr);
  }
});

test('annotations are a map: keys sorted whatever the flag order, __proto__ kept', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'k.efi'), 'kernel');
  const build = async (out: string, annotations: string[]): Promise<{ digest: string; manifest: string }> => {
    const r = await runCli([
      'build',
      '-p',
      `kernel.efi=${join(dir, 'k.efi')}`,
      '-o',
      `oci:${join(dir, out)}`,
      ...annotations.flatMap((a) => ['--annotation', a]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const digest = r.stdout.trim();
    return { digest, manifest: await readFile(join(dir, out, 'blobs', 'sha256', digest.slice(7)), 'utf8') };
  };
  const a = await build('a', ['org.example.b=2', '__proto__=x', '10=ten', 'org.example.a=1', '9=nine']);
  const b = await build('b', ['9=nine', 'org.example.a=1', '10=ten', '__proto__=x', 'org.example.b=2']);
  assert.equal(a.digest, b.digest, 'the order of --annotation does not change the manifest');
  assert.equal(a.manifest, b.manifest);
  const block = a.manifest.slice(a.manifest.indexOf('\n\t"annotations": {'));
  const keys = [...block.matchAll(/^\t\t"([^"]+)": "/gm)].map((m) => m[1]);
  assert.deepEqual(keys, ['10', '9', '__proto__', 'org.example.a', 'org.example.b'], 'sorted by bytes, as Go sorts map keys');
  const none = await build('c', []);
  assert.notEqual(none.digest, (await build('d', ['__proto__=x'])).digest, '__proto__ is an annotation like any other');
});

test('SIGTERM, then SIGINT, during a build: exit code 1 and the new layout is removed', async (t) => {
  const dir = await tempDir(t);
  const big = join(dir, 'big.img');
  await writeFile(big, pseudoRandom(1 << 20, 9));
  await truncate(big, 3 * 1024 ** 3); // sparse: zeros after the first MiB cost no disk
  const out = join(dir, 'out');
  const child = spawn(process.execPath, [cliPath, 'build', '-p', `system=${big}`, '-o', `oci:${out}:v1`, '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let ended = false;
  const closed = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('close', (code, signal) => {
      ended = true;
      resolve({ code, signal });
    }),
  );
  const writing = async (): Promise<boolean> => (await readdir(join(out, '.oci-os-tmp')).catch(() => [] as string[])).some((n) => n.startsWith('blob-'));
  for (let i = 0; i < 3000 && !ended && !(await writing()); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(ended, false, `the build ended before it was interrupted: ${stderr}`);
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 20));
  if (!ended) child.kill('SIGINT');
  const r = await closed;
  assert.deepEqual(r, { code: 1, signal: null }, stderr);
  assert.match(stderr, /interrupted/);
  assert.deepEqual(await entriesLeft(out), [], 'no temporary blob, no oci-layout, no index.json');
});
