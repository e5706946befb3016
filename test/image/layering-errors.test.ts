import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { entriesLeft, runCli, tempDir } from '../helpers/cli.js';
import { hasTool } from '../helpers/tools.js';

async function put(root: string, rel: string, body: string): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), body);
}

/** Runs a failing build: one line on stderr, no image written. */
async function fails(dir: string, tree: string, extra: string[], code: number, pattern: RegExp): Promise<void> {
  const out = join(dir, 'out');
  const r = await runCli(['image', 'build', '--rootfs', tree, '--layering', 'components', ...extra, '-o', `oci:${out}:v1`]);
  assert.equal(r.code, code, r.stderr);
  assert.match(r.stderr, pattern);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.deepEqual(await entriesLeft(out), [], 'no image is written');
}

test('bad input gets one clear line and no image: a corrupt status file, a .list naming a path outside the tree or that is a FIFO, an unreadable --previous', async (t) => {
  const dir = await tempDir(t);
  const corrupt = join(dir, 'corrupt');
  await put(corrupt, 'var/lib/dpkg/status', 'Package: sed\nStatus: install ok installed\nthis is not a field\n');
  await fails(dir, corrupt, [], 5, /var\/lib\/dpkg\/status: line 3 is not a "Field: value" line; the status file is corrupt/);

  const outside = join(dir, 'outside');
  await put(outside, 'var/lib/dpkg/status', 'Package: sed\nStatus: install ok installed\nArchitecture: amd64\n');
  await put(outside, 'var/lib/dpkg/info/sed.list', '/.\n/bin\n/bin/../../etc/passwd\n');
  await fails(dir, outside, [], 5, /var\/lib\/dpkg\/info\/sed.list: line 3 names "\/bin\/..\/..\/etc\/passwd", a path outside the tree/);

  // A .list that is a FIFO: read as it was, the build would wait for a writer forever.
  const fifo = join(dir, 'fifo');
  await put(fifo, 'var/lib/dpkg/status', 'Package: sed\nStatus: install ok installed\nArchitecture: amd64\n');
  await mkdir(join(fifo, 'var/lib/dpkg/info'), { recursive: true });
  const made = spawnSync('mkfifo', [join(fifo, 'var/lib/dpkg/info/sed.list')]);
  assert.equal(made.status, 0, String(made.stderr));
  await fails(dir, fifo, [], 5, /var\/lib\/dpkg\/info\/sed.list: the package database names it, but it is not a regular file in the tree/);

  const apk = join(dir, 'apk');
  await put(apk, 'lib/apk/db/installed', 'P:musl\nF:../x\n');
  await fails(dir, apk, [], 5, /lib\/apk\/db\/installed: line 2 names "..\/x", a path outside the tree/);

  const fine = join(dir, 'fine');
  await put(fine, 'etc/hostname', 'x\n');
  await fails(dir, fine, ['--previous', `oci:${join(dir, 'no-such-layout')}:v1`], 4, /no-such-layout/);
  await put(dir, 'not-an-archive.tar', 'garbage');
  await fails(dir, fine, ['--previous', `oci-archive:${join(dir, 'not-an-archive.tar')}`], 2, /not-an-archive/);
});

test('flags: --max-layers above 250 and --previous without --layering components are refused; an rpm database without rpm warns, one rpm cannot read fails', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await put(tree, 'var/lib/rpm/rpmdb.sqlite', 'not read without rpm');
  await put(tree, 'usr/bin/x', 'x\n');
  const big = await runCli(['image', 'build', '--rootfs', tree, '--layering', 'components', '--max-layers', '251', '-o', `oci:${join(dir, 'o1')}`]);
  assert.equal(big.code, 2, big.stderr);
  const noMode = await runCli(['image', 'build', '--rootfs', tree, '--previous', `oci:${join(dir, 'o1')}`, '-o', `oci:${join(dir, 'o1')}`]);
  assert.equal(noMode.code, 2, noMode.stderr);
  assert.match(noMode.stderr, /--max-layers and --previous go with --layering components/);
  if (hasTool('rpm')) {
    // rpm reads the database, and a file that is no database is bad input.
    await fails(dir, tree, [], 1, /cannot read the rpm database of .*tree: /);
  } else {
    const r = await runCli(['image', 'build', '--rootfs', tree, '--layering', 'components', '-o', `oci:${join(dir, 'o2')}:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /var\/lib\/rpm: an rpm database, but rpm is not on PATH/);
  }
});
