import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import * as tar from 'tar-stream';
import { sha256Digest } from '../../src/oci/digest.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { isRoot, snapshot } from './helpers.js';

interface Item {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  linkname?: string;
  body?: string;
}

/** A tar layer written by tar-stream exactly as given (nothing normalized, nothing checked). */
async function craftTar(items: Item[]): Promise<Buffer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) parts.push(c as Buffer);
  })();
  for (const i of items) {
    const type = i.type ?? 'file';
    const header = { name: i.name, type, linkname: i.linkname, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(1_600_000_000_000) };
    if (type === 'file') pack.entry(header, i.body ?? i.name);
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return Buffer.concat(parts);
}

/** An image of uncompressed layers in a layout, tagged v1. */
async function craftImage(dir: string, layers: Buffer[]): Promise<string> {
  const layout = await OciLayout.open(dir, { create: true });
  const descs = [];
  for (const l of layers) {
    const d = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(l), size: l.length };
    await layout.push(d, Readable.from([l]));
    descs.push(d);
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) } }));
  const cd = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length };
  await layout.push(cd, Readable.from([config]));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cd, layers: descs }));
  const md = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest(manifest), size: manifest.length };
  await layout.push(md, Readable.from([manifest]));
  await layout.tag(md, 'v1');
  await layout.commit();
  return `oci:${dir}:v1`;
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

test('unpack refuses entries that would leave the directory, naming them in one line', async (t) => {
  const dir = await tempDir(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  const marker = `oci-os-test-${randomBytes(6).toString('hex')}`;
  t.after(() => rm(join('/', marker), { force: true }));
  const cases: Array<{ name: string; layers: Item[][]; message: RegExp }> = [
    { name: 'dotdot', layers: [[{ name: 'ok' }, { name: '../outside/evil' }]], message: /layer entry "\.\.\/outside\/evil" has a "\.\." component/ },
    { name: 'nested-dotdot', layers: [[{ name: 'a/../../outside/evil' }]], message: /layer entry "a\/\.\.\/\.\.\/outside\/evil" has a "\.\." component/ },
    { name: 'absolute', layers: [[{ name: '/tmp/evil' }]], message: /layer entry "\/tmp\/evil" is an absolute path/ },
    {
      name: 'symlink-escape',
      layers: [[{ name: 'link', type: 'symlink', linkname: '../../outside' }], [{ name: 'link/evil' }]],
      message: /layer entry "link\/evil" would be written through symlink link -> \.\.\/\.\.\/outside, which points outside the directory/,
    },
    {
      name: 'symlink-chain-escape',
      layers: [
        [
          { name: 'a', type: 'directory' },
          { name: 'a/up', type: 'symlink', linkname: '..' },
          { name: 'b', type: 'symlink', linkname: 'a/up/a/up/..' },
          { name: 'b/evil' },
        ],
      ],
      message: /layer entry "b\/evil" would be written through symlink/,
    },
    {
      name: 'whiteout-dotdot',
      layers: [[{ name: 'a/b/', type: 'directory' }], [{ name: 'a/b/.wh...' }]],
      message: /layer entry "a\/b\/\.wh\.\.\." is a whiteout of "\.\.", which would delete a directory above it/,
    },
    { name: 'whiteout-empty', layers: [[{ name: '.wh.' }]], message: /layer entry "\.wh\." is a whiteout of ""/ },
    {
      name: 'hardlink-escape',
      layers: [[{ name: 'hl', type: 'link', linkname: '../outside/secret' }]],
      message: /layer entry "hl \(hard link to \.\.\/outside\/secret\)" has a "\.\." component/,
    },
  ];
  for (const c of cases) {
    const image = await craftImage(join(dir, `img-${c.name}`), await Promise.all(c.layers.map(craftTar)));
    const target = join(dir, 'rootfs', c.name, 'dir');
    const r = await runCli(['image', 'unpack', image, target]);
    assert.equal(r.code, 5, `${c.name}: ${r.stderr}`);
    assert.match(r.stderr, c.message, c.name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${c.name}: one line`);
    assert.deepEqual(await readdir(outside), [], `${c.name}: nothing written outside`);
    assert.equal(await exists(join(dir, 'rootfs', c.name, 'outside')), false);
  }

  // An absolute symlink is read as the container reads it: from the unpack directory, never the host root.
  const abs = await craftImage(join(dir, 'img-abs'), [
    await craftTar([
      { name: 'etc', type: 'symlink', linkname: '/' },
      { name: `etc/${marker}`, body: 'inside' },
    ]),
  ]);
  const r = await runCli(['image', 'unpack', abs, join(dir, 'abs')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await exists(join(dir, 'abs', marker)), true);
  assert.equal(await exists(join('/', marker)), false);
});

test('whiteouts and opaque directories hide lower layers, as umoci applies them', async (t) => {
  const dir = await tempDir(t);
  const lower = await craftTar([
    { name: 'a/', type: 'directory' },
    { name: 'a/keep' },
    { name: 'a/gone' },
    { name: 'a/gonedir/', type: 'directory' },
    { name: 'a/gonedir/x' },
    { name: 'd/', type: 'directory' },
    { name: 'd/x' },
    { name: 'd/sub/', type: 'directory' },
    { name: 'd/sub/y' },
    { name: 'f', body: 'old' },
  ]);
  const upper = await craftTar([
    { name: 'a/.wh.gone' },
    { name: 'a/.wh.gonedir' },
    { name: 'd/', type: 'directory' },
    { name: 'd/sub/', type: 'directory' },
    { name: 'd/.wh..wh..opq' },
    { name: 'd/z' },
    { name: 'f', body: 'new' },
    { name: 'h', type: 'link', linkname: 'a/keep' },
  ]);
  const image = await craftImage(join(dir, 'img'), [lower, upper]);
  const r = await runCli(['image', 'unpack', image, join(dir, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).layers, 2);
  const got = await snapshot(join(dir, 'out'));
  assert.deepEqual(Object.keys(got).sort(), ['a', 'a/keep', 'd', 'd/sub', 'd/z', 'f', 'h']);
  assert.deepEqual(got.h!.links, ['a/keep', 'h']);
  assert.equal(got.f!.sha256, createHash('sha256').update('new').digest('hex'));
  assert.equal(got['d/sub']!.mtime, undefined);
  assert.equal((await snapshot(join(dir, 'out'), { mtimes: true }))['d/sub']!.mtime, 1_600_000_000);
  if (!requireTools(t, 'umoci')) return;
  const u = spawnSync('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${join(dir, 'img')}:v1`, join(dir, 'bundle')], { encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  // (umoci leaves a cleared directory with the time of the unpack, so mtimes are not compared.)
  assert.deepEqual(await snapshot(join(dir, 'bundle', 'rootfs')), await snapshot(join(dir, 'out')));
});

test('an opaque whiteout after entries of its own layer in byte order clears only what lower layers had', async (t) => {
  const dir = await tempDir(t);
  const lower = await craftTar([{ name: 'dir/', type: 'directory' }, { name: 'dir/-sub/', type: 'directory' }, { name: 'dir/-sub/old' }, { name: 'dir/gone' }]);
  // '-' (0x2d) sorts before '.wh..wh..opq' (0x2e); neither dir/-sub/ nor dir/-new/ has an entry of its own in this layer.
  const upper = await craftTar([
    { name: 'dir/', type: 'directory' },
    { name: 'dir/-new/x' },
    { name: 'dir/-sub/new' },
    { name: 'dir/.wh..wh..opq' },
    { name: 'dir/z' },
  ]);
  const image = await craftImage(join(dir, 'img'), [lower, upper]);
  const r = await runCli(['image', 'unpack', image, join(dir, 'out')]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.keys(await snapshot(join(dir, 'out'))).sort(), ['dir', 'dir/-new', 'dir/-new/x', 'dir/-sub', 'dir/-sub/new', 'dir/z']);
});

test('directory modes and times applied at the end never go through a symlink a later layer put in place', async (t) => {
  const dir = await tempDir(t);
  const outside = join(dir, 'outside');
  await mkdir(join(outside, 'b'), { recursive: true, mode: 0o755 });
  // Layer 1's a/b has mtime 1600000000; applied through the symlink it would land on outside/b.
  const layer1 = await craftTar([
    { name: 'a/', type: 'directory' },
    { name: 'a/b/', type: 'directory' },
  ]);
  const layer2 = await craftTar([{ name: 'a', type: 'symlink', linkname: outside }]);
  const image = await craftImage(join(dir, 'img'), [layer1, layer2]);
  const before = (await stat(join(outside, 'b'))).mtimeMs;
  const r = await runCli(['image', 'unpack', image, join(dir, 'out')]);
  assert.equal(r.code, 0, r.stderr);
  const after = await stat(join(outside, 'b'));
  assert.equal(after.mtimeMs, before, 'the outside directory kept its mtime');
  assert.equal((await snapshot(join(dir, 'out'))).a!.target, outside);
});
