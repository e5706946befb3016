import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readTarInput } from '../../src/image/tar/input.js';
import { readTar } from '../../src/image/tar/reader.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { pythonList } from './helpers.js';

/** A path below `dir` whose last parts are bytes given as latin1 text. */
const bytePath = (dir: string, ...parts: string[]): Buffer => Buffer.concat([Buffer.from(dir), ...parts.map((p) => Buffer.from(`/${p}`, 'latin1'))]);

async function buildLayer(dir: string, input: string, tag: string): Promise<string> {
  const r = await runCli(['image', 'build', '--layer', input, '--layer-compression', 'none', '--output', `oci:${join(dir, 'img')}:${tag}`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return join(dir, 'img', 'blobs', 'sha256', JSON.parse(r.stdout).layers[0].digest.slice(7));
}

test('tar inputs made by GNU tar keep names and link targets that are not UTF-8 byte for byte', async (t) => {
  if (!requireTools(t, 'tar', 'python3')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  const long = `long-\xe9-${'x'.repeat(110)}`;
  const longTarget = `${'t'.repeat(110)}\xfe`;
  await writeFile(bytePath(tree, 'caf\xe9'), 'latin1\n');
  await mkdir(bytePath(tree, 'd\xff'));
  await writeFile(bytePath(tree, 'd\xff', 'inner'), 'inner\n');
  await link(bytePath(tree, 'caf\xe9'), bytePath(tree, 'hard'));
  await symlink(Buffer.from('caf\xe9', 'latin1'), bytePath(tree, 'sym'));
  await symlink(Buffer.from(longTarget, 'latin1'), bytePath(tree, 'sym-long'));
  await writeFile(bytePath(tree, long), 'long\n');
  const expected = [
    ['caf\xe9', '0', ''],
    ['d\xff', '5', ''],
    ['d\xff/inner', '0', ''],
    ['hard', '1', 'caf\xe9'],
    [long, '0', ''],
    ['sym', '2', 'caf\xe9'],
    ['sym-long', '2', longTarget],
  ];
  // pax `path` records (posix) and GNU long-name entries (gnu), both with the bytes as they are.
  for (const format of ['posix', 'gnu']) {
    const input = join(dir, `${format}.tar`);
    const r = spawnSync('tar', [`--format=${format}`, '--sort=name', '-C', tree, '-cf', input, '.'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const layer = await buildLayer(dir, input, format);
    assert.deepEqual(pythonList(layer), expected, format);
  }
});

test('pax hdrcharset=BINARY names and link targets (as Python and libarchive write them) are read as bytes', async (t) => {
  if (!requireTools(t, 'python3')) return;
  const dir = await tempDir(t);
  const input = join(dir, 'binary.tar');
  const py = spawnSync(
    'python3',
    [
      '-c',
      `
import io, sys, tarfile
s = lambda b: b.decode('utf-8', 'surrogateescape')
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT, encoding='utf-8', errors='surrogateescape') as t:
    for name, kind, target in [(b'./caf\\xe9', tarfile.REGTYPE, b''), (b'./sym\\xff', tarfile.SYMTYPE, b'caf\\xe9'), (b'./hard', tarfile.LNKTYPE, b'./caf\\xe9')]:
        i = tarfile.TarInfo(s(name)); i.type = kind; i.linkname = s(target); i.mtime = 1600000000
        t.addfile(i, io.BytesIO())
`,
      input,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  assert.match(spawnSync('grep', ['-c', 'hdrcharset=BINARY', '-a', input], { encoding: 'utf8' }).stdout, /^[1-9]/);

  const bytes = await readFile(input);
  const read = [];
  for await (const e of readTar(
    (async function* () {
      yield bytes;
    })(),
    'binary.tar',
  )) {
    read.push([e.name, e.rawName?.toString('latin1'), e.linkname, e.rawLinkname?.toString('latin1')]);
  }
  assert.deepEqual(read, [
    ['./caf\uFFFD', './caf\xe9', '', undefined],
    ['./sym\uFFFD', './sym\xff', 'caf\uFFFD', 'caf\xe9'],
    ['./hard', undefined, './caf\uFFFD', './caf\xe9'],
  ]);
  const entries = [];
  for await (const { entry } of readTarInput(input))
    entries.push([entry.name, entry.rawName?.toString('latin1'), entry.linkname, entry.rawLinkname?.toString('latin1')]);
  assert.deepEqual(entries, [
    ['caf\uFFFD', 'caf\xe9', undefined, undefined],
    ['sym\uFFFD', 'sym\xff', 'caf\uFFFD', 'caf\xe9'],
    ['hard', undefined, 'caf\uFFFD', 'caf\xe9'],
  ]);

  const layer = await buildLayer(dir, input, 'v1');
  assert.deepEqual(pythonList(layer), [
    ['caf\xe9', '0', ''],
    ['sym\xff', '2', 'caf\xe9'],
    ['hard', '1', 'caf\xe9'],
  ]);
});

test('tar input names that are not UTF-8 with ".." components are refused', async (t) => {
  if (!requireTools(t, 'python3')) return;
  const dir = await tempDir(t);
  const input = join(dir, 'evil.tar');
  const py = spawnSync(
    'python3',
    [
      '-c',
      `
import io, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT, encoding='utf-8', errors='surrogateescape') as t:
    t.addfile(tarfile.TarInfo(b'\\xff/../../evil'.decode('utf-8', 'surrogateescape')), io.BytesIO())
`,
      input,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  const r = await runCli(['image', 'build', '--layer', input, '--output', `oci:${join(dir, 'img')}:v1`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /evil\.tar: entry "\uFFFD\/\.\.\/\.\.\/evil" has a "\.\." component/);
});
