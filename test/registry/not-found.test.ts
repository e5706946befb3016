import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer } from '../../src/server/index.js';
import { runCli, tempDir } from '../helpers/cli.js';

test('a manifest that is not there is named as the user wrote it: tag after ":", digest after "@"', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const digest = `sha256:${'0'.repeat(64)}`;
  const byDigest = await runCli(['inspect', `${server.address}/os/missing@${digest}`]);
  assert.equal(byDigest.code, 4, byDigest.stderr);
  assert.match(byDigest.stderr, new RegExp(`${server.address}/os/missing@${digest} not found`));
  const byTag = await runCli(['inspect', `${server.address}/os/missing:nope`]);
  assert.equal(byTag.code, 4, byTag.stderr);
  assert.match(byTag.stderr, new RegExp(`${server.address}/os/missing:nope not found`));
});
