import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { layerDiffId } from '../../src/image/layer.js';
import { walkTree } from '../../src/image/tree.js';
import { parseXattrDump } from '../../src/image/xattrs.js';
import { tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { isRoot } from './helpers.js';

/** Sets an xattr through the shell, so that names that are not UTF-8 can be given with printf escapes. */
function setXattr(dir: string, printfName: string, attr: string, value: string): void {
  const r = spawnSync('sh', ['-c', `setfattr -h -n "$1" -v "$2" "$(printf '${printfName}')"`, 'sh', attr, value], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** The xattr names of each entry of a walked tree, keyed by the entry's name bytes as hex. */
async function xattrsOf(root: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for await (const { entry } of walkTree(root)) out[(entry.rawName ?? Buffer.from(entry.name)).toString('hex')] = [...(entry.xattrs?.keys() ?? [])];
  return out;
}

test('xattrs reach the layer through a --rootfs that is a symlink, and for names with a backslash or that are not UTF-8; security.selinux is left out', async (t) => {
  if (!requireTools(t, 'getfattr', 'setfattr')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  await writeFile(join(tree, 'f'), 'f\n');
  await writeFile(join(tree, 'b\\101'), 'backslash\n');
  await writeFile(join(tree, 'c\\\\d'), 'two backslashes\n');
  await writeFile(Buffer.from(join(tree, 'caf\xe9'), 'latin1'), 'latin1\n');
  setXattr(tree, 'f', 'user.foo', 'bar');
  setXattr(tree, 'b\\134101', 'user.foo', 'bar');
  setXattr(tree, 'c\\134\\134d', 'user.foo', 'bar');
  setXattr(tree, 'caf\\351', 'user.foo', 'bar');
  // Only root may set security.* attributes.
  if (isRoot) setXattr(tree, 'f', 'security.selinux', 'system_u:object_r:build_host_t:s0');
  await symlink('tree', join(dir, 'link'));

  const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');
  const want = { [hex('b\\101')]: ['user.foo'], [hex('c\\\\d')]: ['user.foo'], [hex('caf\xe9')]: ['user.foo'], [hex('f')]: ['user.foo'] };
  assert.deepEqual(await xattrsOf(tree), want);
  assert.deepEqual(await xattrsOf(join(dir, 'link')), want);
  assert.equal((await layerDiffId(join(dir, 'link'))).diffID, (await layerDiffId(tree)).diffID);
});

test('getfattr dumps: octal escapes undone, bytes kept, security.selinux dropped, capabilities, trusted.* and user.* kept', () => {
  const dump = Buffer.concat([
    Buffer.from('# file: /r/a\\134b\\012c\nsecurity.capability=0sAQAAAg==\nsecurity.selinux=0sc3lzdGVtX3U6b2JqZWN0X3I6ZXRjX3Q6czAA\n'),
    Buffer.from(
      'trusted.t=0sdA==\nuser.u=0sdQ==\n\n# file: /r/d\\\\e\nuser.v=0sdg==\n\n# file: /r/caf\xe9\nuser.w=0sdw==\n\n# file: /r\nuser.root=0sMQ==\n',
      'latin1',
    ),
  ]);
  const m = parseXattrDump(dump, '/r');
  assert.deepEqual([...m.keys()], ['a\\b\nc', 'd\\e', 'caf\xe9', '']);
  assert.deepEqual([...m.get('a\\b\nc')!.keys()], ['security.capability', 'trusted.t', 'user.u']);
  assert.deepEqual(m.get('caf\xe9')!.get('user.w'), Buffer.from('w'));
  assert.deepEqual(m.get('a\\b\nc')!.get('security.capability'), Buffer.from([1, 0, 0, 2]));
});
