import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { BLOCK, END_OF_ARCHIVE, encodeTarHeader, paddingFor, type TarEntry } from '../../src/image/tar/header.js';
import { readTar, type TarReadEntry } from '../../src/image/tar/reader.js';
import { applyLayer, finishUnpack, startUnpack } from '../../src/image/unpack.js';
import { cliPath, pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

const entry = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({
  name,
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtime: 1_600_000_000,
  ...extra,
});

/** A ustar header for `e`, changed by `patch` and given a fresh checksum: fields no writer of ours would produce. */
function rawHeader(e: TarEntry, patch: (h: Buffer) => void = () => {}): Buffer {
  const h = Buffer.from(encodeTarHeader(e));
  assert.equal(h.length, BLOCK, 'a plain ustar header');
  patch(h);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

/** An extended header (`x`, `g`, `L`) holding `data`, with its padding. */
function extended(flag: string, data: Buffer): Buffer {
  const h = rawHeader(entry('PaxHeaders/x', { size: data.length }), (b) => b.write(flag, 156, 1, 'latin1'));
  return Buffer.concat([h, data, Buffer.alloc(paddingFor(data.length))]);
}

function paxRecords(records: Array<[string, string | Buffer]>): Buffer {
  return Buffer.concat(
    records.map(([k, v]) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
      let len = body.length + String(body.length).length;
      if (String(len).length !== String(body.length).length) len = body.length + String(len).length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    }),
  );
}

/** Reads every entry (and its content); the names with their sizes. */
async function readAll(bytes: Buffer | Buffer[], what = 'test.tar'): Promise<Array<[string, TarReadEntry['type'], number]>> {
  const out: Array<[string, TarReadEntry['type'], number]> = [];
  for await (const e of readTar(
    (async function* () {
      yield* Array.isArray(bytes) ? bytes : [bytes];
    })(),
    what,
  )) {
    let n = 0;
    for await (const c of e.body) n += c.length;
    out.push([e.name, e.type, n]);
  }
  return out;
}

test('the tar reader reads a layer to its end: what follows the end-of-archive marker is hashed and must be zeros', async (t) => {
  const bytes = Buffer.concat([
    encodeTarHeader(entry('f', { size: 3 })),
    Buffer.from('abc'),
    Buffer.alloc(paddingFor(3)),
    END_OF_ARCHIVE,
    Buffer.alloc(8 * BLOCK),
  ]);
  // Chunks end right after the first zero block, as a gunzip chunk can.
  const cut = 2 * BLOCK + BLOCK;
  let pulled = 0;
  const source = (async function* () {
    for (const c of [bytes.subarray(0, cut), bytes.subarray(cut, cut + BLOCK), bytes.subarray(cut + BLOCK)]) {
      pulled += c.length;
      yield c;
    }
  })();
  const names: string[] = [];
  for await (const e of readTar(source, 'padded.tar')) names.push(e.name);
  assert.deepEqual(names, ['f']);
  assert.equal(pulled, bytes.length, 'the second zero block and the record padding were read');

  const trailing = Buffer.concat([bytes, Buffer.from('not zero')]);
  await assert.rejects(readAll([trailing.subarray(0, cut), trailing.subarray(cut)], 'trailing.tar'), {
    code: 'INVALID_FORMAT',
    message: 'trailing.tar: data follows the end-of-archive marker',
  });
  // A lone zero block at the end is still an end (GNU tar, Go and Python accept it).
  assert.deepEqual(await readAll(bytes.subarray(0, cut)), [['f', 'file', 3]]);

  // Built with gzip, one file of 15 KiB puts the first zero block at the end of a 16 KiB gunzip chunk: unpacking it checked a DiffID over part of the layer.
  const dir = await tempDir(t);
  await mkdir(join(dir, 'in'));
  await writeFile(join(dir, 'in', 'f'), pseudoRandom(16384 - 2 * BLOCK, 3));
  const b = await runCli(['image', 'build', '--rootfs', join(dir, 'in'), '--layer-compression', 'gzip', '--output', `oci:${join(dir, 'oci')}:v1`]);
  assert.equal(b.code, 0, b.stderr);
  const u = await runCli(['image', 'unpack', `oci:${join(dir, 'oci')}:v1`, join(dir, 'out')]);
  assert.equal(u.code, 0, u.stderr);
  assert.deepEqual(await readFile(join(dir, 'out', 'f')), pseudoRandom(16384 - 2 * BLOCK, 3));
});

test('unpacking refuses data after the end-of-archive marker', async (t) => {
  const dir = await tempDir(t);
  const state = await startUnpack(join(dir, 'out'));
  const layer = Buffer.concat([encodeTarHeader(entry('a')), END_OF_ARCHIVE, encodeTarHeader(entry('hidden')), END_OF_ARCHIVE]);
  await assert.rejects(
    applyLayer(
      state,
      (async function* () {
        yield layer;
      })(),
      'layer 1',
    ),
    { code: 'INVALID_FORMAT', message: 'layer 1: data follows the end-of-archive marker' },
  );
});

test('a tar cut off at a header boundary, without its end-of-archive marker, is truncated', async () => {
  const one = Buffer.concat([encodeTarHeader(entry('a', { size: 3 })), Buffer.from('abc'), Buffer.alloc(paddingFor(3))]);
  await assert.rejects(readAll(one, 'cut.tar'), { code: 'INVALID_FORMAT', message: 'cut.tar: truncated: the archive ends without an end-of-archive marker' });
  // Also after extended headers that have no entry left to apply to.
  await assert.rejects(readAll(Buffer.concat([one, extended('x', paxRecords([['path', 'b']]))]), 'cut.tar'), /cut\.tar: truncated/);
  await assert.rejects(readAll(Buffer.alloc(0), 'empty.tar'), /empty\.tar is not a tar archive \(shorter than one header\)/);
  assert.deepEqual(await readAll(END_OF_ARCHIVE), []);
});

test('a pax size that is not a whole number fails the build at once instead of spinning', async (t) => {
  const dir = await tempDir(t);
  const input = join(dir, 'in.tar');
  await writeFile(
    input,
    Buffer.concat([
      extended('x', paxRecords([['size', '1.5']])),
      encodeTarHeader(entry('f', { size: 1 })),
      Buffer.from('x'),
      Buffer.alloc(511),
      END_OF_ARCHIVE,
    ]),
  );
  // In a child with a deadline: the old reader looped forever without yielding to timers.
  const r = spawnSync(process.execPath, [cliPath, 'image', 'build', '--layer', input, '--layer-compression', 'none', '--output', `oci:${join(dir, 'oci')}`], {
    encoding: 'utf8',
    timeout: 30_000,
    killSignal: 'SIGKILL',
  });
  assert.equal(r.signal, null, 'the build finished');
  assert.equal(r.status, 2, r.stderr); // a --layer that is not a valid tar is invalid input
  assert.match(r.stderr.trim(), /^oci-os: error: .*in\.tar: entry "f" has an invalid pax size record "1\.5"$/);
});

test('numbers in tar headers and pax records must parse', async () => {
  const tail = Buffer.concat([Buffer.from('x'), Buffer.alloc(511), END_OF_ARCHIVE]);
  const withPax = (k: string, v: string) => Buffer.concat([extended('x', paxRecords([[k, v]])), encodeTarHeader(entry('f', { size: 1 })), tail]);
  for (const [k, v] of [
    ['size', '-1'],
    ['size', '1e3'],
    ['size', ' 1'],
    ['size', '99999999999999999999'],
    ['uid', '1.5'],
    ['gid', '-2'],
    ['mtime', 'soon'],
    ['mtime', '1.'],
  ]) {
    await assert.rejects(
      readAll(withPax(k!, v!)),
      { code: 'INVALID_FORMAT', message: `test.tar: entry "f" has an invalid pax ${k} record "${v}"` },
      `${k}=${v}`,
    );
  }
  // Times may have a fraction (POSIX); an empty record keeps the header's value.
  for await (const e of readTar(
    (async function* () {
      yield withPax('mtime', '1700000000.25');
    })(),
    't',
  ))
    assert.equal(e.mtime, 1_700_000_000.25);
  for await (const e of readTar(
    (async function* () {
      yield withPax('uid', '');
    })(),
    't',
  ))
    assert.equal(e.uid, 0);
  // Times before 1970 (GNU tar writes them, in pax and in base-256) are read as 1970.
  for await (const e of readTar(
    (async function* () {
      yield withPax('mtime', '-86400.5');
    })(),
    't',
  ))
    assert.equal(e.mtime, 0);

  const withField = (off: number, bytes: number[] | string) =>
    Buffer.concat([rawHeader(entry('f', { size: 1 }), (h) => (typeof bytes === 'string' ? h.write(bytes, off, 'latin1') : h.set(bytes, off))), tail]);
  const bad: Array<[string, number, number[] | string]> = [
    ['size', 124, '0000000001x\0'],
    ['size', 124, '00000000009\0'],
    ['size', 124, [0xff, ...Array(11).fill(0xff)]],
    ['uid', 108, '12 34\0\0\0'],
    ['gid', 116, [0xc0, 0, 0, 0, 0, 0, 0, 1]],
    ['mode', 100, 'rwxr-x\0\0'],
    ['mtime', 136, '1.5\0\0\0\0\0\0\0\0\0'],
  ];
  for (const [label, off, bytes] of bad) {
    await assert.rejects(
      readAll(withField(off, bytes)),
      { code: 'INVALID_FORMAT', message: `test.tar: entry "f" has an invalid ${label} field in its tar header` },
      label,
    );
  }
  // What GNU tar writes and accepts: leading spaces, space or NUL terminators, base-256.
  const good = withField(124, [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(await readAll(good), [['f', 'file', 1]]);
  for await (const e of readTar(
    (async function* () {
      yield withField(136, [0xff, ...Array(11).fill(0xff)]);
    })(),
    't',
  ))
    assert.equal(e.mtime, 0);
  assert.deepEqual(await readAll(withField(124, '         1 \0')), [['f', 'file', 1]]);
});

test('pax and long-name data held for one entry, and global pax records, are bounded', async () => {
  const tail = Buffer.concat([encodeTarHeader(entry('f')), END_OF_ARCHIVE]);
  const big = (n: number, i: number) => extended('x', paxRecords([[`SCHILY.xattr.user.k${i}`, Buffer.alloc(n, 0x41)]]));
  // Each header is under the limit; together they are not.
  await assert.rejects(readAll(Buffer.concat([big(9 << 20, 1), big(9 << 20, 2), tail])), {
    code: 'INVALID_FORMAT',
    message: 'test.tar: the extended headers of one entry add up to more than 16 MiB',
  });
  await assert.rejects(readAll(Buffer.concat([big(9 << 20, 1), extended('L', Buffer.alloc(8 << 20, 0x61)), tail])), /more than 16 MiB/);
  // The limit is per entry: the same headers before two entries are fine.
  assert.deepEqual(
    (await readAll(Buffer.concat([big(9 << 20, 1), encodeTarHeader(entry('a')), big(9 << 20, 2), tail]))).map(([n]) => n),
    ['a', 'f'],
  );
  const globals = Array.from({ length: 3 }, (_, i) => extended('g', paxRecords([[`comment${i}`, Buffer.alloc(400 << 10, 0x41)]])));
  await assert.rejects(readAll(Buffer.concat([...globals, tail])), {
    code: 'INVALID_FORMAT',
    message: 'test.tar: global pax headers add up to more than 1 MiB',
  });
  // A global record replaced by a later one does not count twice.
  const same = Array.from({ length: 3 }, () => extended('g', paxRecords([['comment', Buffer.alloc(400 << 10, 0x41)]])));
  assert.deepEqual(await readAll(Buffer.concat([...same, tail])), [['f', 'file', 0]]);
});

test('links, symlinks, devices, directories and FIFOs carry no content whatever their size field says', async (t) => {
  const types: Array<[TarEntry['type'], Partial<TarEntry>]> = [
    ['directory', {}],
    ['link', { linkname: 'x' }],
    ['symlink', { linkname: 'x' }],
    ['character-device', {}],
    ['block-device', {}],
    ['fifo', {}],
  ];
  for (const [type, extra] of types) {
    // Size 512 in the header, then straight the next header (as GNU tar, Python and Go read it).
    const h = rawHeader(entry('d/', { type, ...extra }), (b) => b.write('00000001000\0', 124, 'latin1'));
    const got = await readAll(Buffer.concat([h, encodeTarHeader(entry('d/evil')), END_OF_ARCHIVE]));
    assert.deepEqual(
      got,
      [
        ['d/', type, 0],
        ['d/evil', 'file', 0],
      ],
      type,
    );
  }
  // Unpacked, the entry after the directory is there.
  const dir = await tempDir(t);
  const state = await startUnpack(join(dir, 'out'));
  const layer = Buffer.concat([
    rawHeader(entry('d/', { type: 'directory', mode: 0o755 }), (b) => b.write('00000001000\0', 124, 'latin1')),
    encodeTarHeader(entry('d/evil')),
    END_OF_ARCHIVE,
  ]);
  await applyLayer(
    state,
    (async function* () {
      yield layer;
    })(),
    'layer 1',
  );
  await finishUnpack(state);
  assert.deepEqual(await readdir(join(dir, 'out', 'd')), ['evil']);
});
