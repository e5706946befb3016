import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

const warningLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.includes('warning'));

test('build warns once when a layout ends up holding more than one image (Monogon reads a layout with one), in warnings with --json', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'system.img'), pseudoRandom(50_000, 3));
  const lay = join(dir, 'lay');
  const build = (tag: string, ...more: string[]) =>
    runCli(['build', '-p', `system=${join(dir, 'system.img')}`, '--compression', 'none', '-o', `oci:${lay}:${tag}`, ...more]);
  const expected = `oci-os: warning: oci:${lay} now holds 2 images; Monogon's reader accepts a layout with one`;

  const a = await build('a');
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(warningLines(a.stderr), []);
  // The same tag again moves it: still one image, no warning.
  const again = await build('a');
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(warningLines(again.stderr), []);
  assert.equal((await build('a', '--json').then((r) => JSON.parse(r.stdout))).warnings.length, 0);

  const b = await build('b');
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(warningLines(b.stderr), [expected]);
  assert.match(b.stdout, /^sha256:[0-9a-f]{64}\n$/, 'stdout keeps only the digest');
  const index = JSON.parse(await readFile(join(lay, 'index.json'), 'utf8'));
  assert.equal(index.manifests.length, 2, 'both images are kept');

  const json = await build('b', '--json');
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(warningLines(json.stderr), []);
  assert.deepEqual(JSON.parse(json.stdout).warnings, [expected.slice('oci-os: warning: '.length)]);
});
