import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { isRoot, makeTree, setAllMtimes, snapshot } from './helpers.js';

const EPOCH = 1_500_000_000;
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Built {
  digest: string;
  config: { digest: string };
  layers: Array<{ digest: string; diffID: string; mediaType: string; size: number }>;
}

async function build(args: string[], env?: NodeJS.ProcessEnv): Promise<Built> {
  const r = await runCli(['image', 'build', ...args, '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Built;
}

const blob = (layout: string, digest: string) => readFile(join(layout, 'blobs', 'sha256', digest.slice(7)));

async function tarEntries(data: Buffer): Promise<Array<tar.Header>> {
  const out: tar.Header[] = [];
  const ex = tar.extract();
  Readable.from([data]).pipe(ex);
  for await (const e of ex) {
    out.push(e.header);
    e.resume();
  }
  return out;
}

test('same epoch, different mtimes and paths: byte-identical images; one changed file changes exactly one layer', async (t) => {
  if (!requireTools(t, 'zstd', 'tar')) return;
  const dir = await tempDir(t);
  for (const [name, mtime] of [
    ['a', 1_600_000_000],
    ['b', 1_700_000_000],
  ] as const) {
    await makeTree(join(dir, name, 'root'), mtime);
    await mkdir(join(dir, name, 'extra', 'opt'), { recursive: true });
    await writeFile(join(dir, name, 'extra', 'opt', 'big.bin'), pseudoRandom(10 << 20, 3, true));
    await writeFile(join(dir, name, 'extra', 'opt', 'app.conf'), 'x=1\n');
    await setAllMtimes(join(dir, name, 'extra'), mtime);
  }
  const args = (n: string, out: string, comp: string) => [
    '--rootfs',
    join(dir, n, 'root'),
    '--layer',
    join(dir, n, 'extra'),
    '--layer-compression',
    comp,
    '--output',
    `oci:${join(dir, out)}:v1`,
  ];

  const a = await build([...args('a', 'out-a', 'gzip'), '--source-date-epoch', String(EPOCH)]);
  const b = await build(args('b', 'out-b', 'gzip'), { SOURCE_DATE_EPOCH: String(EPOCH) });
  assert.equal(a.digest, b.digest, 'same manifest digest');
  assert.equal(a.config.digest, b.config.digest);
  assert.deepEqual(
    a.layers.map((l) => [l.digest, l.diffID, l.size]),
    b.layers.map((l) => [l.digest, l.diffID, l.size]),
  );
  const blobsA = (await readdir(join(dir, 'out-a', 'blobs', 'sha256'))).sort();
  assert.deepEqual((await readdir(join(dir, 'out-b', 'blobs', 'sha256'))).sort(), blobsA);
  for (const f of blobsA) assert.ok((await blob(join(dir, 'out-a'), `sha256:${f}`)).equals(await blob(join(dir, 'out-b'), `sha256:${f}`)));

  // gzip: no mtime, no name, fixed OS byte; the tar inside is the DiffID.
  const gz = await blob(join(dir, 'out-a'), a.layers[0]!.digest);
  assert.deepEqual([...gz.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  const tarBytes = gunzipSync(gz);
  assert.equal(sha256(tarBytes), a.layers[0]!.diffID);

  // Tar entries: sorted per directory, numeric owners only, mtimes clamped, pax only where needed.
  const headers = await tarEntries(tarBytes);
  const names = headers.map((h) => h.name);
  assert.equal(names[0], isRoot ? 'dev/' : 'etc/');
  if (isRoot) assert.deepEqual([headers[1]!.name, headers[1]!.type, headers[1]!.devmajor, headers[1]!.devminor], ['dev/null', 'character-device', 1, 3]);
  assert.ok(names.indexOf('usr/bin/data.bin') < names.indexOf('usr/bin/suid'));
  assert.ok(names.indexOf('usr/bin/') < names.indexOf('usr/bin/data.bin'));
  assert.ok(names.every((n) => !n.startsWith('./') && !n.startsWith('/')));
  for (const h of headers) {
    assert.equal(h.uname, '', `${h.name} has no user name`);
    assert.equal(h.gname, '', `${h.name} has no group name`);
    assert.equal(h.mtime!.getTime() / 1000, EPOCH, `${h.name} mtime clamped`);
    for (const key of Object.keys(h.pax ?? {})) assert.ok(['path', 'linkpath'].includes(key), `${h.name}: unexpected pax key ${key}`);
  }
  const longName = headers.find((h) => h.name.endsWith('n'.repeat(110)))!;
  assert.ok((longName.pax as Record<string, string> | undefined)?.path, 'a name past ustar is carried by pax');
  assert.equal((headers.find((h) => h.name === 'etc/grüße.txt')?.pax as Record<string, string> | undefined)?.path, 'etc/grüße.txt');
  assert.equal(headers.find((h) => h.name === 'usr/bin/tool-hardlink')?.type, 'link');
  assert.equal(headers.find((h) => h.name === 'usr/bin/tool-hardlink')?.linkname, 'usr/bin/tool');
  assert.equal(headers.find((h) => h.name === 'usr/bin/suid')?.mode, 0o4755);
  assert.equal(headers.find((h) => h.name === 'tmp/')?.mode, 0o1777);
  assert.equal(headers.find((h) => h.name === 'etc/app/config.toml')?.uid, process.getuid?.() === 0 ? 1234 : process.getuid?.());
  const listing = spawnSync('tar', ['-tvf', '-'], { input: tarBytes, encoding: 'utf8' });
  assert.equal(listing.status, 0, listing.stderr);
  assert.match(listing.stdout, /etc\/grüße\.txt/);

  const config = JSON.parse((await blob(join(dir, 'out-a'), a.config.digest)).toString());
  assert.equal(config.created, '2017-07-14T02:40:00Z');
  assert.deepEqual(
    config.history.map((h: { created: string }) => h.created),
    ['2017-07-14T02:40:00Z', '2017-07-14T02:40:00Z'],
  );

  // zstd: the same bytes twice; several frames; `zstd -d` gives the DiffID's tar.
  const za = await build([...args('a', 'zstd-a', 'zstd'), '--source-date-epoch', String(EPOCH)]);
  const zb = await build([...args('b', 'zstd-b', 'zstd'), '--source-date-epoch', String(EPOCH)]);
  assert.equal(za.digest, zb.digest);
  assert.equal(za.layers[1]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.deepEqual(
    za.layers.map((l) => l.diffID),
    a.layers.map((l) => l.diffID),
    'compression does not change DiffIDs',
  );
  const z = spawnSync('zstd', ['-d', '-c', join(dir, 'zstd-a', 'blobs', 'sha256', za.layers[1]!.digest.slice(7))], { maxBuffer: 64 << 20 });
  assert.equal(z.status, 0, z.stderr.toString());
  assert.equal(sha256(z.stdout), za.layers[1]!.diffID);
  const un = await runCli(['image', 'unpack', `oci:${join(dir, 'zstd-a')}:v1`, join(dir, 'zstd-unpacked')]);
  assert.equal(un.code, 0, un.stderr);
  assert.deepEqual((await snapshot(join(dir, 'zstd-unpacked')))['opt/big.bin'], (await snapshot(join(dir, 'a', 'extra')))['opt/big.bin']);

  // Change one file of the second layer: only that layer (and config, manifest) change.
  await writeFile(join(dir, 'b', 'extra', 'opt', 'app.conf'), 'x=2\n');
  const c = await build([...args('b', 'out-c', 'gzip'), '--source-date-epoch', String(EPOCH)]);
  assert.equal(c.layers[0]!.digest, a.layers[0]!.digest);
  assert.notEqual(c.layers[1]!.digest, a.layers[1]!.digest);
  assert.notEqual(c.digest, a.digest);
});

test('tar inputs (plain, gzip, zstd) give the DiffID of the same directory; excludes and kept mtimes without an epoch', async (t) => {
  if (!requireTools(t, 'zstd', 'tar')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await makeTree(tree, 1_600_000_000);
  const gnu = spawnSync('tar', ['--sort=name', '-C', tree, '-cf', join(dir, 'tree.tar'), '.']);
  assert.equal(gnu.status, 0, gnu.stderr.toString());
  assert.equal(spawnSync('sh', ['-c', `gzip -c tree.tar > tree.tar.gz && zstd -q -c tree.tar > tree.tar.zst`], { cwd: dir }).status, 0);
  const fromDir = await build(['--rootfs', tree, '--source-date-epoch', String(EPOCH), '--output', `oci:${join(dir, 'd')}`]);
  const fromTars = await build([
    '--layer',
    join(dir, 'tree.tar'),
    '--layer',
    join(dir, 'tree.tar.gz'),
    '--layer',
    join(dir, 'tree.tar.zst'),
    '--source-date-epoch',
    String(EPOCH),
    '--output',
    `oci:${join(dir, 't')}`,
  ]);
  assert.deepEqual(
    fromTars.layers.map((l) => l.diffID),
    Array(3).fill(fromDir.layers[0]!.diffID),
  );

  // No epoch: mtimes kept, no created time anywhere; --exclude drops a subtree; --owner normalizes.
  const kept = await build(['--rootfs', tree, '--exclude', '^usr/share', '--owner', '0:0', '--output', `oci:${join(dir, 'k')}`], { SOURCE_DATE_EPOCH: '' });
  const config = JSON.parse((await blob(join(dir, 'k'), kept.config.digest)).toString());
  assert.equal(config.created, undefined);
  assert.ok(config.history.every((h: object) => !('created' in h)));
  const headers = await tarEntries(gunzipSync(await blob(join(dir, 'k'), kept.layers[0]!.digest)));
  assert.ok(headers.every((h) => h.mtime!.getTime() / 1000 === 1_600_000_000));
  assert.ok(headers.every((h) => h.uid === 0 && h.gid === 0));
  assert.ok(!headers.some((h) => h.name.startsWith('usr/share')));
  assert.ok(headers.some((h) => h.name === 'usr/bin/tool'));
});
