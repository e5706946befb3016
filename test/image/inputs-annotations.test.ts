import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';

test('image build: annotations keep any key and the order of --annotation flags does not change the digest', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'root');
  await mkdir(root);
  await writeFile(join(root, 'f'), 'x');
  const build = async (name: string, flags: string[]) => {
    const out = join(dir, name);
    const r = await runCli(['image', 'build', '--rootfs', root, '--source-date-epoch', '0', ...flags, '--output', `oci:${out}`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const digest = (JSON.parse(r.stdout) as { digest: string }).digest;
    const manifest = JSON.parse(await readFile(join(out, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { annotations: Record<string, string> };
    return { digest, manifest };
  };
  const a = await build('a', ['--annotation', '__proto__=x', '--annotation', 'b=1', '--annotation', '10=ten']);
  const b = await build('b', ['--annotation', '10=ten', '--annotation', 'b=1', '--annotation', '__proto__=x']);
  assert.equal(a.digest, b.digest);
  assert.deepEqual(Object.keys(a.manifest.annotations), ['10', '__proto__', 'b']);
  assert.equal(Object.getOwnPropertyDescriptor(a.manifest.annotations, '__proto__')?.value, 'x');
});

test('image index: annotations keep any key and the order of --annotation flags does not change the digest', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'root');
  await mkdir(root);
  await writeFile(join(root, 'f'), 'x');
  const img = await runCli(['image', 'build', '--rootfs', root, '--source-date-epoch', '0', '--output', `oci:${join(dir, 'img')}:v1`]);
  assert.equal(img.code, 0, img.stderr);
  const index = async (name: string, flags: string[]) => {
    const r = await runCli(['image', 'index', '--output', `oci:${join(dir, name)}:v1`, ...flags, `oci:${join(dir, 'img')}:v1`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const digest = (JSON.parse(r.stdout) as { digest: string }).digest;
    return { digest, doc: JSON.parse(await readFile(join(dir, name, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { annotations: Record<string, string> } };
  };
  const a = await index('a', ['--annotation', '__proto__=x', '--annotation', 'b=1']);
  const b = await index('b', ['--annotation', 'b=1', '--annotation', '__proto__=x']);
  assert.equal(a.digest, b.digest);
  assert.deepEqual(Object.keys(a.doc.annotations), ['__proto__', 'b']);
});
