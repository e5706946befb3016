import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { isRoot } from './helpers.js';

/** Every xattr of the paths, as getfattr dumps them (base64 values), keyed by path relative to `root`. */
function dump(root: string, paths: string[]): string {
  const r = spawnSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'base64', ...paths], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('xattrs (binary file capabilities too) go from a tree into the layer and back out through image unpack', async (t) => {
  if (!requireTools(t, 'getfattr', 'setfattr', 'tar')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'bin'), { recursive: true });
  await writeFile(join(tree, 'bin', 'ping'), 'ping\n');
  await writeFile(join(tree, 'bin', 'plain'), 'plain\n');
  const set = (path: string, name: string, value: Buffer) => {
    const r = spawnSync('setfattr', ['-h', '-n', name, '-v', `0s${value.toString('base64')}`, path], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  set(join(tree, 'bin', 'ping'), 'user.note', Buffer.from('text value'));
  set(join(tree, 'bin', 'ping'), 'user.bytes', Buffer.from([0, 0xff, 0x0a, 0x3d, 0x80]));
  set(join(tree, 'bin'), 'user.dir', Buffer.from('d'));
  // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW: what `setcap cap_net_raw+ep` writes.
  const cap = Buffer.alloc(20);
  cap.writeUInt32LE(0x02000001, 0);
  cap.writeUInt32LE(1 << 13, 4);
  if (isRoot) set(join(tree, 'bin', 'ping'), 'security.capability', cap);
  const want = dump(tree, ['bin', 'bin/ping', 'bin/plain']);
  assert.match(want, /user\.bytes=0sAP8KPYA=/);
  if (isRoot) assert.match(want, new RegExp(`security\\.capability=0s${cap.toString('base64').replace(/[+/=]/g, '\\$&')}`));

  const r = await runCli(['image', 'build', '--rootfs', tree, '--layer-compression', 'none', '--output', `oci:${join(dir, 'img')}:v1`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const layer = join(dir, 'img', 'blobs', 'sha256', JSON.parse(r.stdout).layers[0].digest.slice(7));
  const list = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvf', layer], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /bin\/ping\n(\s+x: \d+ [\w.]+\n)*\s+x: 5 user\.bytes\n/);

  const un = await runCli(['image', 'unpack', `oci:${join(dir, 'img')}:v1`, join(dir, 'out')]);
  assert.equal(un.code, 0, un.stderr);
  assert.equal(un.stderr, '');
  assert.equal(dump(join(dir, 'out'), ['bin', 'bin/ping', 'bin/plain']), want);
});
