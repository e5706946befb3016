/**
 * pushManifestTagged: a registry stores a manifest by its first tag's PUT
 * (TaggingPusher), other stores push it, then tag it; either way an
 * interrupt between two steps sets no further tag.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { isTaggingPusher, pushManifestTagged } from '../../src/content/capabilities.js';
import { ForwardingStore } from '../../src/content/forwarding-store.js';
import type { ByteSource, ContentStore, PushOptions } from '../../src/content/store.js';
import { copyGraph } from '../../src/copy/graph.js';
import { pushInterrupted } from '../../src/copy/push-report.js';
import { isOciError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { canonicalJson } from '../../src/oci/json.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { RegistryClient } from '../../src/registry/index.js';
import { startRegistryServer } from '../../src/server/index.js';
import { tempDir } from '../helpers/cli.js';

/** A manifest of an empty config and no layers, with its config descriptor. */
function smallManifest(): { config: Buffer; configDesc: Descriptor; bytes: Buffer; desc: Descriptor } {
  const config = Buffer.from('{}');
  const configDesc = { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length };
  const bytes = canonicalJson({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDesc, layers: [] });
  return { config, configDesc, bytes, desc: { mediaType: MediaType.ociManifest, digest: sha256Digest(bytes), size: bytes.length } };
}

/** Hands everything on, and runs `during` as a manifest is pushed. */
class OnManifestPush extends ForwardingStore {
  constructor(
    inner: ContentStore,
    private readonly during: () => void,
  ) {
    super(inner);
  }

  override async push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void> {
    await super.push(desc, content, options);
    if (desc.mediaType === MediaType.ociManifest) this.during();
  }
}

/** The built-in registry over a test folder, and a client of it; both closed after the test. */
async function builtInRegistry(t: TestContext): Promise<{ root: string; server: Awaited<ReturnType<typeof startRegistryServer>>; client: RegistryClient }> {
  const root = await tempDir(t);
  const server = await startRegistryServer({ root: join(root, 'registry'), port: 0 });
  t.after(() => server.close());
  const client = new RegistryClient({ plainHttp: true });
  t.after(() => client.close());
  return { root, server, client };
}

describe('pushManifestTagged', () => {
  it('stores a manifest at a registry by its tags alone, and stops tagging once interrupted', async (t) => {
    const { server, client } = await builtInRegistry(t);
    const repo = client.repository(`${server.address}/tagging/m`);
    assert.ok(isTaggingPusher(repo));
    const m = smallManifest();
    await repo.push(m.configDesc, Readable.from([m.config]));

    const abort = new AbortController();
    const stored: string[] = [];
    await assert.rejects(
      pushManifestTagged(repo, m.desc, m.bytes, ['a', 'b'], {
        signal: abort.signal,
        onStored: () => stored.push('stored'),
        onTag: (tag) => {
          stored.push(tag);
          abort.abort();
        },
      }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.deepEqual(stored, ['stored', 'a'], 'the manifest stored, then one tag, then the interrupt');
    assert.equal((await repo.resolve('a')).digest, m.desc.digest);
    assert.equal((await repo.resolve(m.desc.digest)).digest, m.desc.digest, 'stored by its digest too');
    await assert.rejects(repo.resolve('b'), (e) => isOciError(e, 'NOT_FOUND'));
    // Bytes that are not the manifest the descriptor names are refused before any request.
    await assert.rejects(repo.pushTagged(m.desc, Buffer.from(m.bytes.toString().replace('2', '3')), 'c'), (e) => isOciError(e, 'DIGEST_MISMATCH'));
    await assert.rejects(repo.resolve('c'), (e) => isOciError(e, 'NOT_FOUND'));
  });

  it('a copy and a push interrupted between two tags say which tag was set', async (t) => {
    const { root, server, client } = await builtInRegistry(t);
    const m = smallManifest();
    const layout = await OciLayout.open(join(root, 'lay'), { create: true });
    await layout.push(m.configDesc, Readable.from([m.config]));
    await layout.push(m.desc, Readable.from([m.bytes]));
    const repo = client.repository(`${server.address}/tagging/copy`);
    const abort = new AbortController();
    const events: string[] = [];
    await assert.rejects(
      copyGraph(layout, repo, m.desc, {
        tags: ['a', 'b'],
        signal: abort.signal,
        progress: (e) => events.push(e.type),
        onTag: (tag) => {
          events.push(`tag ${tag}`);
          abort.abort();
        },
      }),
      (e) => isOciError(e, 'ABORTED') && e.message === 'copy interrupted; only a was tagged',
    );
    assert.deepEqual(
      events,
      ['blob-start', 'blob-progress', 'blob-done', 'manifest', 'tag a'],
      'the config uploaded, the manifest stored by the first tag, then the interrupt',
    );
    assert.equal((await repo.resolve('a')).digest, m.desc.digest);
    await assert.rejects(repo.resolve('b'), (e) => isOciError(e, 'NOT_FOUND'));
    assert.equal(pushInterrupted(repo, new Error('stop'), ['a']).message, 'push interrupted; only a was tagged; upload sessions were cancelled');
    assert.equal(pushInterrupted(repo, new Error('stop')).message, 'push interrupted; nothing was tagged; upload sessions were cancelled');
  });

  it('pushes then tags a manifest in a layout, and sets no tag when interrupted while it is pushed', async (t) => {
    const dir = await tempDir(t);
    const m = smallManifest();
    const layout = await OciLayout.open(join(dir, 'lay'), { create: true });
    await layout.push(m.configDesc, Readable.from([m.config]));
    const abort = new AbortController();
    const store = new OnManifestPush(layout, () => abort.abort());
    assert.ok(!isTaggingPusher(store));
    await assert.rejects(pushManifestTagged(store, m.desc, m.bytes, ['v1'], { signal: abort.signal }), (e: Error) => e.name === 'AbortError');
    assert.ok(await layout.exists(m.desc), 'the manifest was pushed');
    await assert.rejects(layout.resolve('v1'), (e) => isOciError(e, 'NOT_FOUND'));

    // Uninterrupted, with no tag: stored by itself.
    await pushManifestTagged(layout, m.desc, m.bytes, []);
    await pushManifestTagged(layout, m.desc, m.bytes, ['v2', 'v3']);
    await layout.commit();
    const reopened = await OciLayout.open(join(dir, 'lay'));
    assert.equal((await reopened.resolve('v2')).digest, m.desc.digest);
    assert.equal((await reopened.resolve('v3')).digest, m.desc.digest);
  });
});
