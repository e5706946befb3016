import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { hostPackages, makeDpkgTree } from '../helpers/dpkg-tree.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { buildJson } from './layering-helpers.js';

test('--previous from a registry: the pushed update finds most layers already there; skopeo copies the result', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo', 'dpkg')) return;
  const dir = await tempDir(t);
  const host = hostPackages();
  const names = ['hostname', 'debianutils', 'gzip', 'base-files', 'sed', 'grep', 'findutils'].filter((p) => host.has(p));
  assert.ok(names.length >= 5, 'the machine has the essential packages');
  const tree = join(dir, 'tree');
  await makeDpkgTree(tree, names);
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const args = ['--rootfs', tree, '--layering', 'components', '--source-date-epoch', '1700000000'];
  const v1 = await buildJson([...args, '--push', `${reg.host}/os:v1`]);
  await appendFile(join(tree, 'usr/share/doc/sed/copyright'), 'patched\n');
  const r = await runCli(['image', 'build', ...args, '--previous', `${reg.host}/os:v1`, '--push', `${reg.host}/os:v2`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const v2 = JSON.parse(r.stdout) as typeof v1;
  const exists = v2.layers.filter((l) => l.status === 'exists');
  assert.ok(exists.length >= v1.layers.length - 2, `${exists.length} of ${v2.layers.length} layers already in the registry`);
  assert.match(
    r.stderr,
    new RegExp(`${v2.layers.length} layers from components; ${exists.length} kept from the previous image \\(${exists.length} already at the destination\\)`),
  );
  const sed = v2.layers.find((l) => l.components.includes('deb:sed'))!;
  assert.equal(sed.status, 'built');
  await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/os:v2`, `oci:${join(dir, 'copy')}:v2`]);
  const un = await runCli(['image', 'unpack', `oci:${join(dir, 'copy')}:v2`, join(dir, 'unpacked')]);
  assert.equal(un.code, 0, un.stderr);
});
