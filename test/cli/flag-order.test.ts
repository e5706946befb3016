import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer } from '../../src/server/index.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('a repeatable flag takes one value each time: the reference may come after -p, --tag or --annotation', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const file = join(root, 'system.img');
  await writeFile(file, 'system image\n');
  const ref = `${server.address}/os/order:1`;
  const r = await runCli(['push', '-p', `system=${file}`, '--tag', 'latest', '--annotation', 'a=1', ref, '--json'], {
    env: { OCI_OS_CACHE_DIR: join(root, 'cache') },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).tags, ['1', 'latest']);
  const attached = await runCli(['attach', '-f', file, '-a', 'k=v', ref, '--artifact-type', 'application/vnd.example.test']);
  assert.equal(attached.code, 0, attached.stderr);
});
