/**
 * A store wrapper that checks OS image payloads chunk by chunk while they
 * are written: the bytes on their way into the destination are also fed to
 * the payload reader (zstd frames decoded, every chunk hash compared), so a
 * pull needs no second read of what it just downloaded. A mismatch fails the
 * write; the caller then aborts the destination.
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { destroySource } from '../content/capabilities.js';
import { ForwardingStore } from '../content/forwarding-store.js';
import type { ByteSource, ContentStore, PushOptions, StoppableSource } from '../content/store.js';
import { isOciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { checkPayloadsFrom, type PayloadVerification, payloadsByBlob, verificationOf } from './payload-reader.js';
import type { OsImagePayload } from './reader.js';

export class ChunkCheckingStore extends ForwardingStore {
  /** Blobs whose every payload was checked on the way in. */
  readonly verified = new Set<string>();
  /**
   * The payloads to check, by blob digest. Identical partitions share one
   * blob, which is written once but must match every payload's chunk hashes.
   */
  private readonly byBlob: Map<string, OsImagePayload[]>;

  constructor(
    inner: ContentStore,
    /** The payloads to check, in image order. */
    private readonly payloads: readonly OsImagePayload[],
  ) {
    super(inner);
    this.byBlob = payloadsByBlob(payloads);
  }

  /** True when every payload given was checked on the way in. */
  get complete(): boolean {
    return this.payloads.every((p) => this.verified.has(p.layer.digest));
  }

  /** Bytes of the blobs checked, each counted once however many payloads share it. */
  get checkedBytes(): number {
    return [...this.verified].reduce((n, d) => n + this.byBlob.get(d)![0]!.layer.size, 0);
  }

  /** The checked payloads in image order (only those checked). */
  results(): PayloadVerification[] {
    return this.payloads.filter((p) => this.verified.has(p.layer.digest)).map(verificationOf);
  }

  /**
   * A payload blob already at the destination is checked here, digest and
   * chunks in one read, rather than hashed by the store's exists() and then
   * read again by the check after the copy.
   */
  override async exists(desc: Descriptor): Promise<boolean> {
    const payloads = this.byBlob.get(desc.digest);
    if (!payloads) return this.inner.exists(desc);
    if (this.verified.has(desc.digest)) return true;
    // What the store itself refused: the blob is absent, or its bytes are not those of the digest.
    let refused: unknown;
    try {
      // fetch() checks the digest and size as the bytes stream by.
      const blob = await this.inner.fetch(desc).catch((err: unknown) => {
        refused = err;
        throw err;
      });
      async function* watched(): AsyncGenerator<Buffer> {
        try {
          yield* blob as AsyncIterable<Buffer>;
        } catch (err) {
          refused = err;
          throw err;
        }
      }
      try {
        await checkPayloadsFrom(watched(), payloads);
      } finally {
        blob.destroy();
      }
    } catch {
      // Absent or damaged: downloaded again (and checked on the way in), no second read needed to tell.
      if (isOciError(refused, 'NOT_FOUND', 'DIGEST_MISMATCH', 'SIZE_MISMATCH')) return false;
      // Otherwise (sound but failing its chunk hashes, before the digest was seen, say): the store's own
      // check decides. A damaged blob is then downloaded again; a sound one is reported by the check
      // after the copy.
      return this.inner.exists(desc);
    }
    this.verified.add(desc.digest);
    return true;
  }

  override async push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void> {
    const payloads = this.byBlob.get(desc.digest);
    if (!payloads || (await this.inner.exists(desc))) return this.inner.push(desc, content, options);
    const feed = new PassThrough({ highWaterMark: 1 << 20 });
    const check = checkPayloadsFrom(feed, payloads);
    // Rejects when the check fails, so a writer waiting for 'drain' is released.
    const failed = check.then(() => new Promise<never>(() => undefined));
    failed.catch(() => undefined);
    let fed = false;
    let started = false;
    async function* tee(): AsyncGenerator<Buffer> {
      started = true;
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
      // The wrapped source's destroy() stays reachable: a store that stops reading ends a read that waits.
      const teed: StoppableSource = { [Symbol.asyncIterator]: tee, destroy: () => destroySource(content) };
      await this.inner.push(desc, teed, options);
    } catch (err) {
      feed.destroy();
      // A failed check is the cause; a check cut short by the failed write is not.
      const checkErr = await check.then(
        () => undefined,
        (e: unknown) => e,
      );
      throw checkErr !== undefined && !(checkErr instanceof Error && /premature close/i.test(checkErr.message)) ? checkErr : err;
    }
    if (!started) {
      // The store read none of it: it found the blob present after all (another writer stored it
      // meanwhile). The check would wait for bytes that never come, and the copy with it; the blob
      // is not counted as checked, so the check after the copy reads it.
      feed.destroy();
      await check.catch(() => undefined);
      return;
    }
    await check;
    this.verified.add(desc.digest);
  }
}
