import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { sha256Digest } from '../../src/oci/digest.js';
import { RegistryClient } from '../../src/registry/index.js';
import { startRegistryServer } from '../../src/server/index.js';
import { tempDir } from '../helpers/cli.js';

test('uploads under one command signal leave no listener on it behind', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const client = new RegistryClient({ plainHttp: true });
  t.after(() => client.close());
  const abort = new AbortController();
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  process.on('warning', onWarning);
  t.after(() => process.removeListener('warning', onWarning));
  // Through the repository's signal, as a command's Ctrl-C reaches every upload of a push.
  const repo = client.repository(`${server.address}/sig/blobs`, { signal: abort.signal });
  for (let i = 0; i < 15; i++) {
    const bytes = Buffer.from(`blob ${i}\n`.repeat(100));
    await repo.push({ mediaType: 'application/octet-stream', digest: sha256Digest(bytes), size: bytes.length }, Readable.from([bytes]));
  }
  assert.equal(getEventListeners(abort.signal, 'abort').length, 0);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    warnings.map((w) => w.name),
    [],
  );
});
