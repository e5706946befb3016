import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scanTree } from '../../src/image/layering/tree-scan.js';
import { walkTree } from '../../src/image/tree.js';
import { tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

test('the scanned tree gives back every entry of the walk, finds each by path, and reads each file from where the walk did', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  await mkdir(join(root, 'usr/lib/deep/er'), { recursive: true });
  await mkdir(join(root, 'usr/lib-x'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'usr/lib/deep/er/f'), 'content');
  await writeFile(join(root, 'usr/lib-x/g'), 'more content');
  await writeFile(join(root, 'etc/é ü.conf'), 'x');
  await link(join(root, 'usr/lib-x/g'), join(root, 'usr/lib/hard'));
  await symlink('../lib/deep', join(root, 'usr/lib-x/s'));
  await writeFile(Buffer.from(`${root}/etc/bad-\xff-name`, 'latin1'), 'not utf-8');
  // More entries than the columns start with, so that they grow.
  for (let i = 0; i < 1100; i++) await writeFile(join(root, 'usr/lib/deep', `n${i}`), '');
  const walked = [];
  for await (const e of walkTree(root, {}, [])) walked.push(e);
  const tree = await scanTree(root, {}, []);
  assert.equal(tree.count, walked.length);
  walked.forEach((w, i) => {
    const fields = Object.entries(w.entry).filter(([, v]) => v !== undefined);
    assert.deepEqual(tree.entry(i), Object.fromEntries(fields));
    assert.deepEqual(tree.source(i), w.source);
    const path = w.entry.name.replace(/\/$/, '');
    assert.equal(tree.path(i), path);
    assert.equal(tree.find(path), i);
    const slash = path.lastIndexOf('/');
    assert.equal(tree.parent[i], slash < 0 ? -1 : tree.find(path.slice(0, slash)));
  });
  assert.equal(tree.find('usr/lib/nothing'), undefined);
  assert.equal(tree.find('usr/lib/'), undefined);
  assert.equal(tree.linkname(tree.find('usr/lib-x/s')!), '../lib/deep');
  assert.equal(tree.type(tree.find('usr/lib-x/g')!), 'link', 'the later path of a hard-linked file is the link');
  assert.ok(tree.entry(tree.find('etc')!).name === 'etc/');
  assert.ok(
    walked.some((w) => w.entry.rawName !== undefined && Buffer.isBuffer(w.source)),
    'a name that is not UTF-8 is among them',
  );
});

test('the scan puts extended attributes where the walk does: on files, directories, names that are not UTF-8, never on a hard link', async (t) => {
  if (!requireTools(t, 'getfattr', 'setfattr')) return;
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await mkdir(join(root, 'usr/lib-x'), { recursive: true });
  await writeFile(join(root, 'usr/lib/hard'), 'linked');
  await link(join(root, 'usr/lib/hard'), join(root, 'usr/lib-x/g'));
  await writeFile(join(root, 'usr/é.conf'), 'x');
  await writeFile(Buffer.from(`${root}/usr/bad-\xff-name`, 'latin1'), 'not utf-8');
  // A real U+FFFD and a byte that is not UTF-8 (shown as U+FFFD): one path, two entries.
  await writeFile(join(root, 'usr/a\ufffd'), 'real U+FFFD');
  await writeFile(Buffer.from(`${root}/usr/a\xff`, 'latin1'), 'not utf-8');
  for (const [name, attr] of [
    ['usr/lib', 'user.component'],
    ['usr/lib/hard', 'user.b'],
    ['usr/lib/hard', 'user.a'],
    ['usr/\\303\\251.conf', 'user.component'],
    ['usr/bad-\\377-name', 'user.component'],
    ['usr/a\\357\\277\\275', 'user.real'],
    ['usr/a\\377', 'user.raw'],
  ]) {
    const r = spawnSync('sh', ['-c', `setfattr -h -n "$1" -v v "$(printf '${name}')"`, 'sh', attr!], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  const walked = [];
  for await (const e of walkTree(root, {}, [])) walked.push(e);
  const tree = await scanTree(root, {}, []);
  assert.equal(tree.count, walked.length);
  for (const [i, w] of walked.entries()) assert.deepEqual(tree.entry(i).xattrs, w.entry.xattrs, w.entry.name);
  const names = (i: number) => [...(tree.entry(i).xattrs?.keys() ?? [])];
  assert.deepEqual(names(tree.find('usr/lib')!), ['user.component']);
  assert.deepEqual(names(tree.find('usr/lib/hard')!), ['user.a', 'user.b']);
  assert.deepEqual(names(tree.find('usr/lib-x/g')!), [], 'the hard link');
  assert.deepEqual(names(tree.find('usr/é.conf')!), ['user.component']);
  const raw = walked.findIndex((w) => w.entry.name === 'usr/bad-\ufffd-name');
  assert.deepEqual(names(raw), ['user.component'], 'the name that is not UTF-8');
  const twins = walked.flatMap((w, i) => (w.entry.name === 'usr/a\ufffd' ? [[w.entry.rawName ? 'raw' : 'real', names(i)]] : []));
  assert.deepEqual(
    twins,
    [
      ['real', ['user.real']],
      ['raw', ['user.raw']],
    ],
    'two entries of one path each keep their own',
  );
});

test('a walk lets the event loop run as it goes (Ctrl-C, timers and progress are not held off to its end)', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  // More entries than the walk goes ahead by while extended attributes are read.
  for (let d = 0; d < 30; d++) {
    await mkdir(join(root, `d${d}`), { recursive: true });
    const r = spawnSync('sh', ['-c', 'seq 1 700 | sed s/^/f/ | xargs touch', join(root, `d${d}`)], { cwd: join(root, `d${d}`) });
    assert.equal(r.status, 0, String(r.stderr));
  }
  // Turns of the event loop, each running one immediate that queues the next; counted from the
  // first entry on (what runs before the walk, the root's checks, does not count).
  let turns = 0;
  let entries = 0;
  let stop = false;
  const turn = () => {
    turns++;
    if (!stop) setImmediate(turn);
  };
  setImmediate(turn);
  try {
    for await (const _ of walkTree(root, {}, [])) if (entries++ === 0) turns = 0;
  } finally {
    stop = true;
  }
  assert.equal(entries, 30 * 701);
  assert.ok(turns >= 2, `the event loop turned ${turns} times during the walk`);
});
