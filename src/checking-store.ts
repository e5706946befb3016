/**
 * A store wrapper that checks OS image payloads chunk by chunk while they
 * are written: the bytes on their way into the destination are also fed to
 * the payload reader (zstd frames decoded, every chunk hash compared), so a
 * pull needs no second read of what it just downloaded. A mismatch fails the
 * write; the caller then aborts the destination.
 */
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import type { ByteSource, ContentStore, PushOptions, PushStreamOptions, StoredBlob } from './content/store.js';
import type { Descriptor } from './oci/descriptor.js';
import { readPayloadFrom, type OsImagePayload, type PayloadVerification } from './osimage/reader.js';

export class ChunkCheckingStore implements ContentStore {
  /** Payloads whose every chunk was checked on the way in, by blob digest. */
  readonly verified = new Map<string, PayloadVerification>();

  constructor(
    private readonly inner: ContentStore,
    /** The payloads to check, by blob digest. */
    private readonly payloads: ReadonlyMap<string, OsImagePayload>,
  ) {}

  get kind(): ContentStore['kind'] {
    return this.inner.kind;
  }

  /** True when every payload given was checked on the way in. */
  get complete(): boolean {
    return [...this.payloads.keys()].every((d) => this.verified.has(d));
  }

  /** The checked payloads in image order (only those checked). */
  results(): PayloadVerification[] {
    return [...this.payloads.keys()].flatMap((d) => {
      const v = this.verified.get(d);
      return v ? [v] : [];
    });
  }

  exists(desc: Descriptor): Promise<boolean> {
    return this.inner.exists(desc);
  }
  fetch(desc: Descriptor): Promise<Readable> {
    return this.inner.fetch(desc);
  }
  pushStream(content: ByteSource, options: PushStreamOptions): Promise<StoredBlob> {
    return this.inner.pushStream(content, options);
  }
  resolve(reference: string): Promise<Descriptor> {
    return this.inner.resolve(reference);
  }
  tag(desc: Descriptor, tag: string): Promise<void> {
    return this.inner.tag(desc, tag);
  }

  async push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void> {
    const payload = this.payloads.get(desc.digest);
    if (!payload || (await this.inner.exists(desc))) return this.inner.push(desc, content, options);
    const feed = new PassThrough({ highWaterMark: 1 << 20 });
    const check = (async () => {
      for await (const _ of readPayloadFrom(feed, payload)) void _;
    })();
    // Rejects when the check fails, so a writer waiting for 'drain' is released.
    const failed = check.then(() => new Promise<never>(() => undefined));
    failed.catch(() => undefined);
    let fed = false;
    async function* tee(): AsyncGenerator<Buffer> {
      try {
        for await (const c of content as AsyncIterable<Uint8Array>) {
          const buf = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
          if (!feed.write(buf)) await Promise.race([once(feed, 'drain'), failed]);
          yield buf;
        }
        feed.end();
        fed = true;
      } finally {
        if (!fed) feed.destroy();
      }
    }
    try {
      await this.inner.push(desc, tee(), options);
    } catch (err) {
      feed.destroy();
      const checkErr = await check.then(() => undefined, (e: unknown) => e);
      throw checkErr && !(checkErr instanceof Error && /premature close/i.test(checkErr.message)) ? checkErr : err;
    }
    await check;
    this.verified.set(desc.digest, { name: payload.name, size: payload.size, chunks: payload.chunkHashes.length, blobSize: payload.layer.size, compression: payload.compression });
  }
}
