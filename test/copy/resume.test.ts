import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { OciError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { RegistryClient } from '../../src/registry/client.js';
import { contentRangeStart, fetchBlobResumable } from '../../src/registry/fetch-resume.js';
import { pseudoRandom } from '../helpers/cli.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { tempRegistry } from '../server/helpers.js';
import { sha } from './fixtures.js';

type Reg = Awaited<ReturnType<typeof tempRegistry>>;

async function drain(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('resumable blob fetch', () => {
  let reg: Reg;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let ignoreRanges = false;
  const seenRanges: string[] = [];
  const data = pseudoRandom(2 << 20, 77);
  const desc = { mediaType: MediaType.octetStream, digest: sha(data), size: data.length };

  before(async () => {
    reg = await tempRegistry({
      hooks: {
        onRequest(req) {
          if (req.headers.range) {
            seenRanges.push(String(req.headers.range));
            if (ignoreRanges) delete req.headers.range; // a backend that always answers 200 with the whole blob
          }
          return false;
        },
      },
    });
    proxy = await startFaultProxy(reg.url, { otherListener: false });
    client = new RegistryClient({ retry: { retries: 3, baseDelayMs: 1 } });
    await client.repository(`${reg.address}/r/blob`).pushContent(desc, Readable.from([data]));
  });
  after(async () => {
    await client.close();
    await proxy.stop();
    await reg.stop();
  });

  it('continues with a single Range after a cut body (206)', async () => {
    seenRanges.length = 0;
    proxy.clearRules();
    proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, nth: 1, action: { type: 'resetResponse', afterBytes: 700_000 } });
    const resumes: number[] = [];
    const repo = client.repository(`${proxy.host}/r/blob`);
    const s = await fetchBlobResumable(repo, desc, { onResume: (i) => resumes.push(i.offset) });
    assert.ok((await drain(s)).equals(data));
    assert.equal(resumes.length, 1);
    assert.deepEqual(seenRanges, [`bytes=${resumes[0]}-`]);
    assert.ok(resumes[0]! > 0 && resumes[0]! <= 700_000);
  });

  it("is what a repository's fetch() does for blobs, with no opt-in", async () => {
    seenRanges.length = 0;
    proxy.clearRules();
    proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, nth: 1, action: { type: 'resetResponse', afterBytes: 700_000 } });
    const s = await client.repository(`${proxy.host}/r/blob`).fetch(desc);
    assert.ok((await drain(s)).equals(data));
    assert.equal(seenRanges.length, 1);
  });

  it('accepts a 200 answer to the Range request by skipping what it already has', async () => {
    seenRanges.length = 0;
    ignoreRanges = true;
    try {
      proxy.clearRules();
      proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, nth: 1, action: { type: 'resetResponse', afterBytes: 1_000_000 } });
      const repo = client.repository(`${proxy.host}/r/blob`);
      const s = await fetchBlobResumable(repo, desc);
      assert.ok((await drain(s)).equals(data));
      assert.equal(seenRanges.length, 1);
      const statuses = proxy.log.slice(-2).map((e) => e.status);
      assert.deepEqual(statuses, [0, 200]);
    } finally {
      ignoreRanges = false;
    }
  });

  it('a link that breaks more often than the retries allow, but moves on each time, still delivers the blob', async () => {
    seenRanges.length = 0;
    proxy.clearRules();
    // Six cuts with retries: 3, each after 300 000 more bytes (every resumed body is cut too).
    proxy.addRule({ method: 'GET', path: /\/blobs\/sha256:/, times: 6, action: { type: 'resetResponse', afterBytes: 300_000 } });
    const resumes: number[] = [];
    const s = await fetchBlobResumable(client.repository(`${proxy.host}/r/blob`), desc, { onResume: (i) => resumes.push(i.offset) });
    assert.ok((await drain(s)).equals(data));
    assert.equal(resumes.length, 6);
    assert.ok(
      resumes.every((o, i) => i === 0 || o > resumes[i - 1]!),
      `each resume started further on: ${resumes.join(', ')}`,
    );
  });

  it('fails on a digest mismatch and on a missing blob, without resuming', async () => {
    proxy.clearRules();
    const repo = client.repository(`${proxy.host}/r/blob`);
    const wrong = { ...desc, digest: sha(Buffer.from('other')) };
    await assert.rejects(fetchBlobResumable(repo, wrong), (e: OciError) => e.code === 'NOT_FOUND');
    const lying = { ...desc, size: desc.size - 1 };
    await assert.rejects(drain(await fetchBlobResumable(repo, lying)), (e: OciError) => e.code === 'SIZE_MISMATCH');
    assert.equal(contentRangeStart('bytes 10-19/20'), 10);
    assert.equal(contentRangeStart('bytes */20'), undefined);
  });
});
