import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TarEntry } from '../../src/image/tar/header.js';
import { applyLayer, finishUnpack, startUnpack } from '../../src/image/unpack.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { tarOf } from './helpers.js';

/** A path below `dir` whose last parts are bytes given as latin1 text. */
const bytePath = (dir: string, ...parts: string[]): Buffer => Buffer.concat([Buffer.from(dir), ...parts.map((p) => Buffer.from(`/${p}`, 'latin1'))]);
/** The names in a directory as bytes (latin1 text), sorted. */
const names = async (p: Buffer | string) => (await readdir(p, { encoding: 'buffer' })).map((n) => n.toString('latin1')).sort();
/** An entry whose name (and link target) are bytes given as latin1 text, as the tree walk makes them. */
const rawEntry = (name: string, extra: Partial<TarEntry> = {}, linkname?: string): TarEntry => ({
  name: Buffer.from(name, 'latin1').toString('utf8'),
  rawName: Buffer.from(name, 'latin1'),
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtime: 1_600_000_000,
  ...(linkname !== undefined && { linkname: Buffer.from(linkname, 'latin1').toString('utf8'), rawLinkname: Buffer.from(linkname, 'latin1') }),
  ...extra,
});

test('image unpack creates names, symlink targets and hard links that are not UTF-8 with their exact bytes', async (t) => {
  if (!requireTools(t, 'getfattr', 'setfattr', 'mkfifo', 'python3')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  await writeFile(bytePath(tree, 'caf\xe9'), 'latin1\n');
  await mkdir(bytePath(tree, 'd\xff'));
  await writeFile(bytePath(tree, 'd\xff', 'inner\xfe'), 'inner\n');
  await link(bytePath(tree, 'caf\xe9'), bytePath(tree, 'hard'));
  await symlink(Buffer.from('d\xff/inner\xfe', 'latin1'), bytePath(tree, 'sym'));
  await symlink(Buffer.from('caf\xe9', 'latin1'), bytePath(tree, 'sym\xe9'));
  await writeFile(join(tree, 'grüße.txt'), 'utf-8\n');
  spawnSync('mkfifo', [join(tree, 'fifo')]);
  const fifo = spawnSync('python3', [
    '-c',
    'import os, sys; os.rename(sys.argv[1], sys.argv[1].encode() + b"\\xfd"); os.setxattr(sys.argv[2].encode() + b"/caf\\xe9", "user.test", b"v\\x00\\xff")',
    join(tree, 'fifo'),
    tree,
  ]);
  assert.equal(fifo.status, 0, fifo.stderr?.toString());

  const img = `oci:${join(dir, 'img')}:v1`;
  const b = await runCli(['image', 'build', '--rootfs', tree, '--layer-compression', 'none', '--output', img]);
  assert.equal(b.code, 0, b.stderr);
  const out = join(dir, 'out');
  const u = await runCli(['image', 'unpack', img, out]);
  assert.equal(u.code, 0, u.stderr);

  assert.deepEqual(
    await names(out),
    ['caf\xe9', 'd\xff', 'fifo\xfd', 'grüße.txt', 'hard', 'sym', 'sym\xe9']
      .map((n) => Buffer.from(n, n === 'grüße.txt' ? 'utf8' : 'latin1').toString('latin1'))
      .sort(),
  );
  assert.deepEqual(await names(bytePath(out, 'd\xff')), ['inner\xfe']);
  assert.equal(await readFile(bytePath(out, 'caf\xe9'), 'utf8'), 'latin1\n');
  assert.equal(await readFile(bytePath(out, 'd\xff', 'inner\xfe'), 'utf8'), 'inner\n');
  assert.equal(await readFile(join(out, 'grüße.txt'), 'utf8'), 'utf-8\n');
  assert.equal((await readlink(bytePath(out, 'sym'), { encoding: 'buffer' })).toString('latin1'), 'd\xff/inner\xfe');
  assert.equal((await readlink(bytePath(out, 'sym\xe9'), { encoding: 'buffer' })).toString('latin1'), 'caf\xe9');
  assert.equal((await lstat(bytePath(out, 'hard'))).ino, (await lstat(bytePath(out, 'caf\xe9'))).ino);
  assert.ok((await lstat(bytePath(out, 'fifo\xfd'))).isFIFO());
  const x = spawnSync('python3', ['-c', 'import os, sys; print(os.getxattr(sys.argv[1].encode() + b"/caf\\xe9", "user.test").hex())', out], {
    encoding: 'utf8',
  });
  assert.equal(x.status, 0, x.stderr);
  assert.equal(x.stdout.trim(), '7600ff');
});

test('whiteouts match names that are not UTF-8 byte for byte, and lower-layer names of any bytes are cleared by opaque ones', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'out');
  const state = await startUnpack(out);
  const layer = (entries: TarEntry[]) =>
    (async function* () {
      yield tarOf(entries.map((entry) => ({ entry })));
    })();
  await applyLayer(
    state,
    layer([
      rawEntry('a\xe9'),
      rawEntry('a\xe8'),
      rawEntry('d\xff/', { type: 'directory', mode: 0o755 }),
      rawEntry('d\xff/x\xfe'),
      rawEntry('o/', { type: 'directory', mode: 0o755 }),
      rawEntry('o/l\xfe'),
    ]),
    'layer 1',
  );
  await applyLayer(state, layer([rawEntry('.wh.a\xe9'), rawEntry('d\xff/.wh.x\xfe'), rawEntry('o/.wh..wh..opq'), rawEntry('o/new\xfa')]), 'layer 2');
  await finishUnpack(state);
  assert.deepEqual(await names(out), ['a\xe8', 'd\xff', 'o']);
  assert.deepEqual(await names(bytePath(out, 'd\xff')), []);
  assert.deepEqual(await names(join(out, 'o')), ['new\xfa']);
});

test('names that are not UTF-8 cannot leave the directory: ".." and absolute names are found in the bytes, symlinks are followed as the kernel would', async (t) => {
  const dir = await tempDir(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  const cases: Array<[string, TarEntry[], RegExp]> = [
    [
      'dotdot',
      [rawEntry('\xff/../../outside/evil')],
      /layer entry "\uFFFD\/\.\.\/\.\.\/outside\/evil" has a "\.\." component that would leave the directory; refusing to unpack it/,
    ],
    ['absolute', [rawEntry(`${outside}/evil\xff`)], /is an absolute path; refusing to unpack it/],
    ['hard link', [rawEntry('h\xff', { type: 'link' }, '\xfe/../../outside/evil')], /hard link to \uFFFD\/\.\.\/\.\.\/outside\/evil\)" has a "\.\." component/],
    [
      'symlink',
      [rawEntry('l\xff', { type: 'symlink' }, '\xfe/../../../outside'), rawEntry('l\xff/evil')],
      /layer entry "l\uFFFD\/evil" would be written through symlink l\uFFFD -> \uFFFD\/\.\.\/\.\.\/\.\.\/outside, which points outside the directory/,
    ],
  ];
  for (const [label, entries, message] of cases) {
    const state = await startUnpack(join(dir, label));
    await assert.rejects(
      applyLayer(
        state,
        (async function* () {
          yield tarOf(entries.map((entry) => ({ entry })));
        })(),
        'layer 1',
      ),
      { code: 'INVALID_FORMAT', message },
      label,
    );
  }
  assert.deepEqual(await readdir(outside), []);
  // `..` is a component only when it is exactly those two bytes.
  const state = await startUnpack(join(dir, 'fine'));
  await applyLayer(
    state,
    (async function* () {
      yield tarOf([{ entry: rawEntry('..\xff') }, { entry: rawEntry('\xff..') }]);
    })(),
    'layer 1',
  );
  assert.deepEqual(await names(join(dir, 'fine')), ['..\xff', '\xff..']);
});
