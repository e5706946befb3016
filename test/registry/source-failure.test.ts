import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChunkSource } from '../../src/registry/chunk-source.js';
import { RegistryClient } from '../../src/registry/client.js';
import { startRegistryServer } from '../../src/server/index.js';
import { tempDir } from '../helpers/cli.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';

const MiB = 1 << 20;
const EMPTY = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** One MiB, then the failure a disk or a changed file would give. */
async function* failing(): AsyncGenerator<Buffer> {
  yield Buffer.alloc(MiB, 7);
  throw new Error('disk gone');
}

/**
 * A source whose first piece fails (a compressor that reads ahead of what
 * it yields meets the failure there), and which then says it is done, as a
 * generator that threw does.
 */
const failingFirst = (): AsyncIterable<Buffer> => {
  let threw = false;
  return {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<Buffer>> => {
        await sleep(1);
        if (threw) return { done: true, value: undefined };
        threw = true;
        throw new Error('disk gone');
      },
    }),
  };
};

test('a read-ahead that fails is the failure of every later read, not the end of the source', async () => {
  const src = new ChunkSource(failing());
  src.readAhead(4 * MiB);
  // Nothing waits for the read-ahead: its failure happens unobserved.
  await sleep(20);
  await assert.rejects(src.fill(1), /disk gone/);
  await assert.rejects(async () => {
    for await (const _ of src.drain());
  }, /disk gone/);
  assert.ok(!src.ended, 'the source is not taken for complete');

  // More bytes than expected, found by a read-ahead, likewise.
  async function* twenty(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(10);
    yield Buffer.alloc(10);
  }
  const long = new ChunkSource(twenty(), 15);
  long.readAhead(100);
  await sleep(20);
  await assert.rejects(long.fill(1), { code: 'SIZE_MISMATCH' });
});

test('a source that fails while the upload session opens fails the upload, and no blob is committed', async (t) => {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const proxy = await startFaultProxy(`http://${server.address}`);
  t.after(() => proxy.stop());
  // The POST is answered late: the source's first piece is read (and fails) meanwhile.
  proxy.addRule({ method: 'POST', path: /\/blobs\/uploads\/$/, times: Infinity, action: { type: 'delay', ms: 200 } });
  const client = new RegistryClient({ plainHttp: true });
  t.after(() => client.close());
  const repo = client.repository(`${proxy.host}/fails/blob`);
  // Streamed (reopen given) and in chunks (a chunk size chosen): both paths read ahead.
  for (const options of [{ reopen: failingFirst }, { reopen: failingFirst, chunkSize: 2 * MiB }]) {
    await assert.rejects(repo.uploadStream(failingFirst(), options), /disk gone/);
  }
  assert.equal(await repo.exists({ mediaType: 'application/octet-stream', digest: EMPTY, size: 0 }), false, 'no empty blob stands for the upload');
  const puts = proxy.log.filter((e) => e.method === 'PUT');
  assert.deepEqual(puts, [], 'nothing was committed');
});
