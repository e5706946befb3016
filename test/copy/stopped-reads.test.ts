/**
 * A blob stream whose reader stops early (the destination failed, a check
 * failed) lets go of what is under it at once: the registry response and
 * its connection, the layout file. Otherwise closing the registry client
 * waits for a response nobody reads, and the command never ends. Nor does
 * an upload that fails, or starts its source over, wait on a read of its
 * source that hangs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { copyBlobs } from '../../src/copy/blob.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { RegistryClient } from '../../src/registry/client.js';
import { fetchBlobResumable } from '../../src/registry/fetch-resume.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { openFilesOn } from '../helpers/open-files.js';
import { tempRegistry } from '../server/helpers.js';
import { sha } from './fixtures.js';

/** Resolves with 'settled', or 'timeout' when `p` takes longer than `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<'settled' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  try {
    return await Promise.race([
      p.then(
        () => 'settled' as const,
        () => 'settled' as const,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A test registry behind a fault-injecting proxy, stopped after the test. */
async function proxiedRegistry(t: TestContext): Promise<{ reg: Awaited<ReturnType<typeof tempRegistry>>; proxy: FaultProxy }> {
  const reg = await tempRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url, { otherListener: false });
  t.after(() => proxy.stop());
  return { reg, proxy };
}

/** A blob of 2 MiB of pseudo-random bytes (from `seed`), pushed to `repo` of `reg` directly. */
async function pushedBlob(reg: { address: string }, repo: string, seed: number): Promise<Descriptor> {
  const data = pseudoRandom(2 << 20, seed);
  const desc = { mediaType: MediaType.octetStream, digest: sha(data), size: data.length };
  const setup = new RegistryClient();
  await setup.repository(`${reg.address}/${repo}`).pushContent(desc, Readable.from([data]));
  await setup.close();
  return desc;
}

test('a resumable download stopped by its reader while the registry stalls lets the connection go', async (t) => {
  const { reg, proxy } = await proxiedRegistry(t);
  const desc = await pushedBlob(reg, 'r/stall', 11);
  proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, times: Infinity, action: { type: 'stallResponse', afterBytes: 256 * 1024 } });

  const client = new RegistryClient();
  let closed = false;
  t.after(async () => {
    if (!closed) await client.close();
  });
  const stream = await fetchBlobResumable(client.repository(`${proxy.host}/r/stall`), desc);
  let got = 0;
  for await (const c of stream) {
    got += (c as Buffer).length;
    if (got >= 256 * 1024) break; // the reader stops: the for-await destroys the stream
  }
  assert.equal(got, 256 * 1024);
  // The proxy sends nothing more: only destroying the response ends it.
  assert.equal(await within(client.close(), 5000), 'settled', 'closing the client waits for no response');
  closed = true;
});

test('a layout blob stream stopped by its reader closes its file', async (t) => {
  if (process.platform !== 'linux') {
    t.skip('open files are listed from /proc/self/fd');
    return;
  }
  const dir = join(await tempDir(t), 'layout');
  const data = pseudoRandom(8 << 20, 12);
  const desc = { mediaType: MediaType.octetStream, digest: sha(data), size: data.length };
  const w = await OciLayout.open(dir, { create: true });
  await w.push(desc, Readable.from([data]));
  await w.commit();
  const path = w.blobPath(desc.digest);
  const openOnBlob = (): Promise<number> => openFilesOn(path);

  const layout = await OciLayout.open(dir);
  for (let i = 0; i < 3; i++) {
    const stream = await layout.fetch(desc);
    for await (const _ of stream) break; // one chunk, then the reader stops
  }
  for (let i = 0; i < 50 && (await openOnBlob()) > 0; i++) await sleep(10);
  assert.equal(await openOnBlob(), 0, 'no file left open');
});

test('a blob copy whose upload is refused while its registry source stalls fails at once, not when the source times out', async (t) => {
  const { reg, proxy } = await proxiedRegistry(t);
  const desc = await pushedBlob(reg, 'r/src', 13);
  // The source sends headers and nothing more; the destination refuses the upload session.
  proxy.addRule({ method: 'GET', path: /^\/v2\/r\/src\/blobs\//, times: Infinity, action: { type: 'stallResponse', afterBytes: 0 } });
  proxy.addRule({
    method: 'POST',
    path: /^\/v2\/r\/dst\/blobs\/uploads\//,
    times: Infinity,
    action: { type: 'respond', status: 403, body: { errors: [{ code: 'DENIED', message: 'no pushing here' }] } },
  });

  const client = new RegistryClient();
  // A copy that never settled would keep the client's close waiting: it is stopped first.
  const stop = new AbortController();
  t.after(async () => {
    stop.abort();
    await client.close();
  });
  const copy = copyBlobs(client.repository(`${proxy.host}/r/src`), client.repository(`${proxy.host}/r/dst`), [desc], { signal: stop.signal });
  assert.equal(await within(copy, 5000), 'settled', 'the refusal is reported while the source still stalls');
  await assert.rejects(copy, /no pushing here|denied/i);
});

test('a streamed upload the registry cuts short while its source stalls starts a new read of the source at once', async (t) => {
  // Two registries: within one the blob would be mounted, not uploaded.
  const { reg, proxy } = await proxiedRegistry(t);
  const { proxy: dstProxy } = await proxiedRegistry(t);
  const desc = await pushedBlob(reg, 'r/src', 14);
  // The first read of the source stalls mid-blob, while its first bytes are in the upload's one
  // streamed PATCH; the registry answers that PATCH with a 500 at once.
  proxy.addRule({ method: 'GET', path: /^\/v2\/r\/src\/blobs\//, action: { type: 'stallResponse', afterBytes: 256 * 1024 } });
  dstProxy.addRule({ method: 'PATCH', path: /^\/v2\/r\/dst\/blobs\/uploads\//, action: { type: 'respond', status: 500, early: true } });

  const client = new RegistryClient();
  let closed = false;
  // A copy that never settled would keep the client's close waiting: it is stopped first.
  const stop = new AbortController();
  t.after(async () => {
    stop.abort();
    if (!closed) await client.close();
  });
  const dst = client.repository(`${dstProxy.host}/r/dst`);
  const copy = copyBlobs(client.repository(`${proxy.host}/r/src`), dst, [desc], { signal: stop.signal });
  assert.equal(await within(copy, 10_000), 'settled', 'the upload goes on from a new read, not after the stalled one times out');
  await copy;
  assert.ok(await dst.exists(desc));
  assert.ok(proxy.log.filter((e) => e.method === 'GET' && e.path.includes('/blobs/')).length >= 2, 'the source was read again');
  // The stalled read was let go of: closing the client waits for no response.
  assert.equal(await within(client.close(), 5000), 'settled');
  closed = true;
});
