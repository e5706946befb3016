import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { assertPlanInvariants, assertUnpacksEqual, buildJson, readLayers } from './layering-helpers.js';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** A noarch rpm NAME holding `files` (path → content), built with rpmbuild under `dir`. */
async function buildRpm(dir: string, name: string, files: Record<string, string>): Promise<string> {
  const top = join(dir, 'rpmbuild');
  const spec = join(dir, `${name}.spec`);
  const install = Object.entries(files).map(([p, body]) => `mkdir -p "%{buildroot}$(dirname ${p})"\nprintf '%s' '${body}' > "%{buildroot}${p}"`);
  await writeFile(
    spec,
    [
      `Name: ${name}`,
      'Version: 1.0',
      'Release: 1',
      'Summary: test package',
      'License: MIT',
      'BuildArch: noarch',
      '%description',
      'test package',
      '%install',
      ...install,
      '%files',
      ...Object.keys(files),
      '',
    ].join('\n'),
  );
  run('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, spec]);
  return join(top, 'RPMS', 'noarch', `${name}-1.0-1.noarch.rpm`);
}

test('an rpm database: each package rpm lists a component of its files, the database itself volatile', async (t) => {
  if (!requireTools(t, 'rpm', 'rpmbuild')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  const files = {
    alpha: { '/usr/bin/alpha': '#!/bin/sh\necho alpha\n', '/usr/share/alpha/data': 'alpha data\n' },
    beta: { '/usr/bin/beta': '#!/bin/sh\necho beta\n', '/usr/share/beta/data': 'beta data\n', '/etc/beta.conf': 'x=1\n' },
  };
  const rpms = [await buildRpm(dir, 'alpha', files.alpha), await buildRpm(dir, 'beta', files.beta)];
  // The database at the path distributions use (not rpm's built-in default, which Debian sets to ~/.rpmdb);
  // --justdb records the packages, and their files are put in place here.
  run('rpm', ['--root', tree, '--dbpath', '/var/lib/rpm', '--initdb']);
  run('rpm', ['--root', tree, '--dbpath', '/var/lib/rpm', '-i', '--nodeps', '--justdb', '--noscripts', ...rpms]);
  for (const [path, body] of Object.values(files).flatMap((f) => Object.entries(f))) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await writeFile(join(tree, path), body);
  }
  await writeFile(join(tree, 'usr/bin/unowned'), 'no package\n');
  assert.ok((await readdir(join(tree, 'var/lib/rpm'))).includes('rpmdb.sqlite'), 'rpm writes an sqlite database');

  const layout = join(dir, 'out');
  await buildJson(['--rootfs', tree, '--layering', 'components', '--source-date-epoch', '1700000000', '-o', `oci:${layout}:v1`]);
  const layers = await readLayers(layout, 'v1');
  const where = (path: string) => layers.find((l) => l.entries.has(path))!.components;
  assert.deepEqual(where('usr/bin/alpha'), ['rpm:alpha']);
  assert.deepEqual(where('usr/share/alpha/data'), ['rpm:alpha']);
  assert.deepEqual(where('usr/share/beta/data'), ['rpm:beta']);
  assert.deepEqual(where('etc/beta.conf'), ['rpm:beta']);
  assert.ok(!where('usr/bin/unowned').some((c) => c.startsWith('rpm:')), "a file no package lists is not a package's");
  assert.ok(!where('var/lib/rpm/rpmdb.sqlite').some((c) => c.startsWith('rpm:')), "the database is not a package's");
  assertPlanInvariants(layers);
  await assertUnpacksEqual(dir, layout, 'v1', tree);
});
