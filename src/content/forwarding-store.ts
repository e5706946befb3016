/**
 * A store that hands every call to another, options included: the base of
 * decorators that change one thing (check payloads as they are written,
 * count reads in a test) and must pass the rest through unchanged. The
 * inner store's optional capabilities (capabilities.ts) are not passed on:
 * a decorator offers one only by declaring it itself.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.js';
import type { ByteSource, ContentStore, FetchOptions, PushOptions, PushStreamOptions, StoredBlob } from './store.js';

export class ForwardingStore implements ContentStore {
  constructor(protected readonly inner: ContentStore) {}

  exists(desc: Descriptor): Promise<boolean> {
    return this.inner.exists(desc);
  }

  fetch(desc: Descriptor, options?: FetchOptions): Promise<Readable> {
    return this.inner.fetch(desc, options);
  }

  push(desc: Descriptor, content: ByteSource, options?: PushOptions): Promise<void> {
    return this.inner.push(desc, content, options);
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
}
