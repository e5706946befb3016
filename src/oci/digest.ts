import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { OciError } from '../errors.js';
import { digestRe, sha256DigestRe } from './reference-grammar.js';

/** A content digest, `sha256:<64 lowercase hex>` (the only algorithm oci-os writes). */
export type Digest = `sha256:${string}`;

/** True for a syntactically valid digest of any registered algorithm (image-spec descriptor grammar). */
export function isDigest(s: string): boolean {
  return digestRe.test(s);
}

/** Validates a sha256 digest and returns it typed; throws INVALID_ARGUMENT otherwise. */
export function parseDigest(s: string): Digest {
  if (!sha256DigestRe.test(s)) {
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
 * Algorithms whose digests are checked, with the length of their hex
 * encoding: the image-spec's registered sha256 and sha512, and sha384,
 * which go-digest (and so most registries and tools) also accepts. Any
 * other algorithm cannot be checked, so its content is refused rather than
 * passed on unverified.
 */
export const checkedAlgorithms: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/**
 * The hash algorithm of a digest whose content oci-os can check; throws
 * UNSUPPORTED for another algorithm and INVALID_FORMAT for an encoding that
 * does not fit the algorithm (`what` names the content in the message).
 */
export function digestAlgorithm(digest: string, what = `digest ${digest}`): string {
  const colon = digest.indexOf(':');
  const alg = colon > 0 ? digest.slice(0, colon) : '';
  const hexLength = Object.hasOwn(checkedAlgorithms, alg) ? checkedAlgorithms[alg] : undefined;
  if (hexLength === undefined) {
    if (!isDigest(digest)) throw new OciError('INVALID_FORMAT', `${what}: "${digest}" is not a digest (algorithm:encoded)`);
    throw new OciError('UNSUPPORTED', `${what}: digest algorithm "${alg}" cannot be checked (supported: ${Object.keys(checkedAlgorithms).join(', ')})`);
  }
  if (!new RegExp(`^[a-f0-9]{${hexLength}}$`).test(digest.slice(colon + 1))) {
    throw new OciError('INVALID_FORMAT', `${what}: "${digest}" is not a valid ${alg} digest (expected ${hexLength} lowercase hex characters)`);
  }
  return alg;
}

/**
 * A pass-through stream that hashes what flows through it and, when
 * `expected` is given, fails at the end unless the digest and size match.
 * The hash is the expected digest's algorithm (sha256 without one); an
 * algorithm that cannot be checked fails the stream at its first byte.
 * Bytes are never buffered beyond the stream's own high-water mark.
 */
export class DigestStream extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: string;
  /**
   * Why the expected digest cannot be checked. Kept for the first write
   * rather than thrown by the constructor: callers create this stream with
   * a response or file already open and rely on the stream to carry every
   * failure (and to close what feeds it).
   */
  private readonly refused?: OciError;
  private size = 0;
  private result?: { digest: string; size: number };

  constructor(private readonly expected?: { digest: string; size?: number; what?: string }) {
    super();
    let algorithm = 'sha256';
    if (expected) {
      try {
        algorithm = digestAlgorithm(expected.digest, expected.what ?? expected.digest);
      } catch (err) {
        this.refused = err as OciError;
      }
    }
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.refused) {
      cb(this.refused);
      return;
    }
    this.hash.update(chunk);
    this.size += chunk.length;
    const exp = this.expected;
    if (exp?.size !== undefined && this.size > exp.size) {
      cb(new OciError('SIZE_MISMATCH', `${exp.what ?? exp.digest}: more than the expected ${exp.size} bytes`));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.refused) {
      cb(this.refused);
      return;
    }
    const digest = `${this.algorithm}:${this.hash.digest('hex')}`;
    const size = this.size;
    this.result = { digest, size };
    const exp = this.expected;
    if (exp) {
      const what = exp.what ?? exp.digest;
      if (exp.size !== undefined && size !== exp.size) {
        cb(new OciError('SIZE_MISMATCH', `${what}: got ${size} bytes, expected ${exp.size}`));
        return;
      }
      if (digest !== exp.digest) {
        cb(new OciError('DIGEST_MISMATCH', `${what}: content has digest ${digest}, expected ${exp.digest}`));
        return;
      }
    }
    cb();
  }

  /** Digest (in the expected digest's algorithm) and size; available once the stream has ended. */
  get digestResult(): { digest: string; size: number } {
    if (!this.result) throw new OciError('INTERNAL', 'digest read before the stream ended');
    return this.result;
  }
}
