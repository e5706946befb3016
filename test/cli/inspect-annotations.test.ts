/** `inspect` shows manifest and index annotations, sorted and escaped. */

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

test('inspect lists manifest and index annotations, sorted and escaped, only when there are some', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'system.img'), pseudoRandom(4096));
  const os = `oci:${join(dir, 'os')}`;
  const built = await runCli([
    'build',
    '-p',
    `system=${join(dir, 'system.img')}`,
    '--annotation',
    'b=2',
    '--annotation',
    'a=1',
    '--annotation',
    'evil=x\u001b[31my\nz',
    '-o',
    os,
  ]);
  assert.equal(built.code, 0, built.stderr);
  const r = await runCli(['inspect', os]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Annotations:\n {2}a=1\n {2}b=2\n {2}evil=x\\u001b\[31my\\nz\n/m);
  assert.ok(!r.stdout.includes('\u001b'), 'no escape sequence reaches the terminal');
  assert.deepEqual(JSON.parse((await runCli(['inspect', os, '--json'])).stdout).summary.annotations, { a: '1', b: '2', evil: 'x\u001b[31my\nz' });

  await mkdir(join(dir, 'tree'));
  await writeFile(join(dir, 'tree', 'f'), 'x');
  const img = `oci:${join(dir, 'img')}:v1`;
  assert.equal((await runCli(['image', 'build', '--rootfs', join(dir, 'tree'), '-o', img])).code, 0);
  assert.doesNotMatch((await runCli(['inspect', img])).stdout, /Annotations/);
  const idx = `oci:${join(dir, 'idx')}:v1`;
  const indexed = await runCli(['image', 'index', '-o', idx, '--annotation', 'org.opencontainers.image.version=1', img]);
  assert.equal(indexed.code, 0, indexed.stderr);
  assert.match((await runCli(['inspect', idx])).stdout, /^Annotations:\n {2}org\.opencontainers\.image\.version=1$/m);
});
