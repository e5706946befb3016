import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import * as tar from 'tar-stream';
import { zstdCompress } from '../../src/codec/zstd.js';
import { mergeExecConfig, parseCommand, serializeConfig } from '../../src/image/config.js';
import { decompress } from '../../src/image/decompress.js';
import { layerTar } from '../../src/image/layer.js';
import type { TarEntry } from '../../src/image/tar/header.js';
import { readTar } from '../../src/image/tar/reader.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { tarOf } from './helpers.js';

const file = (name: string, body: Buffer, extra: Partial<TarEntry> = {}): { entry: TarEntry; body: Buffer } => ({
  entry: { name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1_500_000_000, ...extra },
  body,
});

test('pax headers: every name length around the ustar limits, big ids and times, binary xattrs — GNU tar reads them back', (t) => {
  if (!requireTools(t, 'tar')) return;
  const entries: Array<{ entry: TarEntry; body?: Buffer }> = [];
  const names: string[] = [];
  // Record lengths cross 2- and 3-digit boundaries around these sizes.
  for (let n = 85; n <= 115; n++) names.push(`d/${'x'.repeat(n)}`);
  for (const name of names) entries.push(file(name, Buffer.from(name)));
  entries.push(file('big-ids', Buffer.from('b'), { uid: 3_000_000, gid: 4_000_000, mtime: 2 ** 34 }));
  entries.push({ entry: { name: 'ln', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, linkname: `${'../'.repeat(40)}target` } });
  entries.push(
    file('attrs', Buffer.from('a'), {
      xattrs: new Map([
        ['user.bin', Buffer.from([0, 0xff, 0x0a, 0x3d])],
        ['user.text', Buffer.from('hello')],
      ]),
    }),
  );
  const bytes = tarOf(entries);
  const list = spawnSync('tar', ['--numeric-owner', '--full-time', '-tvf', '-'], { input: bytes, encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  assert.deepEqual(
    lines.slice(0, names.length).map((l) => l.split(' ').pop()),
    names,
  );
  assert.match(lines[names.length]!, /3000000\/4000000 .* 2514-05-30 .* big-ids$/);
  assert.match(lines[names.length + 1]!, new RegExp(`ln -> ${'\\.\\./'.repeat(40)}target$`));
  // The xattr record keeps every byte, and its length prefix counts them.
  const attrs = bytes.indexOf('SCHILY.xattr.user.bin=');
  let recordStart = attrs - 1;
  while (bytes[recordStart - 1]! >= 0x30 && bytes[recordStart - 1]! <= 0x39) recordStart--;
  const len = Number(bytes.subarray(recordStart, attrs - 1).toString());
  assert.deepEqual([...bytes.subarray(attrs + 22, recordStart + len)], [0, 0xff, 0x0a, 0x3d, 0x0a]);
  const x = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvf', '-'], { input: bytes, encoding: 'utf8' });
  assert.equal(x.status, 0, x.stderr);
  assert.match(x.stdout, /attrs\n\s+x: 4 user\.bin\n\s+x: 5 user\.text/);
});

test('zstd decoding splits concatenated frames, skips skippable frames and reports broken data', async () => {
  const a = pseudoRandom(3 << 20, 1, true);
  const b = pseudoRandom(100_000, 2);
  const skippable = Buffer.alloc(8 + 5);
  skippable.writeUInt32LE(0x184d2a5e, 0);
  skippable.writeUInt32LE(5, 4);
  const stream = Buffer.concat([await zstdCompress(a, 3), skippable, await zstdCompress(b, 1), await zstdCompress(Buffer.alloc(0), 3)]);
  // Fed in awkward pieces so headers straddle chunk boundaries.
  const pieces: Buffer[] = [];
  for (let off = 0, i = 0; off < stream.length; i++) {
    const n = [1, 2, 3, 7, 4096, 65_537][i % 6]!;
    pieces.push(stream.subarray(off, off + n));
    off += n;
  }
  const out: Buffer[] = [];
  for await (const c of decompress(Readable.from(pieces), 'test')) out.push(c);
  assert.ok(Buffer.concat(out).equals(Buffer.concat([a, b])));
  await assert.rejects(async () => {
    for await (const _ of decompress(Readable.from([stream.subarray(0, stream.length - 40)]), 'cut.zst')) {
      /* drain */
    }
  }, /cut\.zst: zstd stream is truncated/);
});

test('config: a new entrypoint drops the inherited cmd; "" clears; env replaced by name; keys in the spec order', () => {
  const base = { Entrypoint: ['/a'], Cmd: ['--x'], Env: ['PATH=/bin', 'A=1'], Healthcheck: { Test: ['NONE'] } };
  assert.deepEqual(mergeExecConfig(base, { entrypoint: ['/b'] }), { Entrypoint: ['/b'], Env: ['PATH=/bin', 'A=1'], Healthcheck: { Test: ['NONE'] } });
  assert.deepEqual(mergeExecConfig(base, { entrypoint: ['/b'], cmd: ['y'] })?.Cmd, ['y']);
  assert.equal(mergeExecConfig(base, { entrypoint: parseCommand('', '--entrypoint') })?.Entrypoint, undefined);
  assert.deepEqual(
    mergeExecConfig(base, {
      env: [
        ['A', '2'],
        ['B', 'x=y'],
      ],
    })?.Env,
    ['PATH=/bin', 'A=2', 'B=x=y'],
  );
  assert.deepEqual(parseCommand('echo "hi there"', '--cmd'), ['/bin/sh', '-c', 'echo "hi there"']);
  const text = serializeConfig({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [] },
    config: { Cmd: ['c'], Healthcheck: { Test: ['NONE'] }, User: 'u', Labels: { b: '1', a: '<&>' } },
  }).toString();
  assert.deepEqual(Object.keys(JSON.parse(text)), ['architecture', 'os', 'config', 'rootfs']);
  assert.deepEqual(Object.keys(JSON.parse(text).config), ['User', 'Cmd', 'Labels', 'Healthcheck']);
  assert.match(text, /"a": "\\u003c\\u0026\\u003e"/);
});

test('tar-stream (an independent reader) agrees on names, types, modes and link targets', async () => {
  const bytes = tarOf([
    { entry: { name: 'dir/', type: 'directory', mode: 0o1777, uid: 0, gid: 0, size: 0, mtime: 1 } },
    file('dir/grüße', Buffer.from('x'), { mode: 0o4755 }),
    { entry: { name: 'dir/hl', type: 'link', mode: 0o4755, uid: 0, gid: 0, size: 0, mtime: 1, linkname: 'dir/grüße' } },
    { entry: { name: 'dev', type: 'character-device', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1, devmajor: 1, devminor: 3 } },
  ]);
  const ex = tar.extract();
  Readable.from([bytes]).pipe(ex);
  const got: Array<[string, string | null | undefined, number | undefined, string | null | undefined]> = [];
  for await (const e of ex) {
    got.push([e.header.name, e.header.type, e.header.mode, e.header.linkname]);
    e.resume();
  }
  assert.deepEqual(got, [
    ['dir/', 'directory', 0o1777, null],
    ['dir/grüße', 'file', 0o4755, null],
    ['dir/hl', 'link', 0o4755, 'dir/grüße'],
    ['dev', 'character-device', 0o600, null],
  ]);
});

test('a tar input keeps xattrs byte for byte and is re-normalized (GNU tar reads the result)', async (t) => {
  const dir = await tempDir(t);
  const input = join(dir, 'in.tar');
  await writeFile(
    input,
    tarOf([
      file('./etc/x', Buffer.from('x'), {
        uid: 7,
        gid: 8,
        mtime: 1_900_000_000,
        xattrs: new Map([
          ['security.capability', Buffer.from([1, 0, 0, 2, 0xff, 0xfe, 0x0a])],
          ['user.text', Buffer.from('hello')],
        ]),
      }),
      { entry: { name: '/abs/dir/', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1 } },
    ]),
  );
  const parts: Buffer[] = [];
  for await (const c of layerTar(input, { normalize: { sourceDateEpoch: 1_000_000_000, owner: { uid: 0, gid: 0 } } })) parts.push(c);
  const got: Array<[string, number, number, number, Record<string, number[]>]> = [];
  for await (const e of readTar(Readable.from(parts), 'layer')) {
    got.push([e.name, e.uid, e.gid, e.mtime, Object.fromEntries([...e.xattrs].map(([k, v]) => [k, [...v]]))]);
  }
  assert.deepEqual(got, [
    ['etc/x', 0, 0, 1_000_000_000, { 'security.capability': [1, 0, 0, 2, 0xff, 0xfe, 0x0a], 'user.text': [...Buffer.from('hello')] }],
    ['abs/dir/', 0, 0, 1, {}],
  ]);
  const list = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvf', '-'], { input: Buffer.concat(parts), encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /etc\/x\n\s+x: 7 security\.capability\n\s+x: 5 user\.text/);
});

test('the tar reader: GNU long names, checksums, truncation, unread content skipped', async (t) => {
  const long = `dir/${'n'.repeat(150)}`;
  const gnu = spawnSync('sh', ['-c', `mkdir -p g/dir && touch "g/${long}" && tar --format=gnu -C g -cf - dir`], { cwd: await tempDir(t) });
  assert.equal(gnu.status, 0, gnu.stderr?.toString());
  const names: string[] = [];
  for await (const e of readTar(Readable.from([gnu.stdout]), 'gnu.tar')) names.push(e.name);
  assert.deepEqual(names, ['dir/', long]);
  const bytes = tarOf([file('a', Buffer.from('abc'))]);
  const corrupt = Buffer.from(bytes);
  corrupt[10]! ^= 1;
  await assert.rejects(async () => {
    for await (const _ of readTar(Readable.from([corrupt]), 'bad.tar')) {
      /* read */
    }
  }, /bad\.tar is not a tar archive \(its first header's checksum does not match\)/);
  await assert.rejects(async () => {
    for await (const e of readTar(Readable.from([bytes.subarray(0, 514)]), 'cut.tar'))
      for await (const _ of e.body) {
        /* read */
      }
  }, /cut\.tar: the archive ends in the middle of an entry/);
  // Unread content is skipped: only headers are looked at.
  const two = tarOf([file('a', pseudoRandom(5000, 1)), file('b', Buffer.from('b'))]);
  const seen: string[] = [];
  for await (const e of readTar(Readable.from([two.subarray(0, 700), two.subarray(700)]), 'two.tar')) seen.push(e.name);
  assert.deepEqual(seen, ['a', 'b']);
});
