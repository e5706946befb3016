import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { OciError } from '../errors.js';

/** A content digest, `sha256:<64 lowercase hex>` (the only algorithm oci-os writes). */
export type Digest = `sha256:${string}`;

const sha256Re = /^sha256:[a-f0-9]{64}$/;
const anyDigestRe = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** True for a syntactically valid digest of any registered algorithm (image-spec descriptor grammar). */
export function isDigest(s: string): boolean {
  return anyDigestRe.test(s);
}

/** Validates a sha256 digest and returns it typed; throws INVALID_ARGUMENT otherwise. */
export function parseDigest(s: string): Digest {
  if (!sha256Re.test(s)) {
    throw new OciError('INVALID_ARGUMENT', `invalid digest "${s}": expected sha256:<64 lowercase hex characters>`);
  }
  return s as Digest;
}

/** SHA-256 of a buffer as a digest. */
export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Hex part of a digest. */
export function digestHex(d: string): string {
  return d.slice(d.indexOf(':') + 1);
}

/** Incremental SHA-256 with a running byte count. */
export class Sha256Counter {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/**
 * A pass-through stream that hashes what flows through it and, when
 * `expected` is given, fails at the end unless the digest and size match.
 * Bytes are never buffered beyond the stream's own high-water mark.
 */
export class DigestStream extends Transform {
  private readonly counter = new Sha256Counter();
  private result?: { digest: Digest; size: number };

  constructor(private readonly expected?: { digest: string; size?: number; what?: string }) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.counter.update(chunk);
    const exp = this.expected;
    if (exp?.size !== undefined && this.counter.size > exp.size) {
      cb(new OciError('SIZE_MISMATCH', `${exp.what ?? exp.digest}: more than the expected ${exp.size} bytes`));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const digest = this.counter.digest();
    const size = this.counter.size;
    this.result = { digest, size };
    const exp = this.expected;
    if (exp) {
      const what = exp.what ?? exp.digest;
      if (exp.size !== undefined && size !== exp.size) {
        cb(new OciError('SIZE_MISMATCH', `${what}: got ${size} bytes, expected ${exp.size}`));
        return;
      }
      if (exp.digest.startsWith('sha256:') && digest !== exp.digest) {
        cb(new OciError('DIGEST_MISMATCH', `${what}: content has digest ${digest}, expected ${exp.digest}`));
        return;
      }
    }
    cb();
  }

  /** Digest and size; available once the stream has ended. */
  get digestResult(): { digest: Digest; size: number } {
    if (!this.result) throw new OciError('INTERNAL', 'digest read before the stream ended');
    return this.result;
  }
}
