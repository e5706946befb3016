/**
 * How large the chunks of one upload are (distribution-spec "Pushing a blob
 * in chunks"; registry quirks in shared/spec/registry-push.md): the default
 * per registry and source, halved on 413 or a "too large" 416 (GHCR), grown
 * on a "too small" 400 (ECR), never below `OCI-Chunk-Min-Length`, and, for
 * chunks streamed from a source that can be read again, as large as the
 * registry takes.
 */
import { OciError } from '../errors.js';
import type { RegistryError } from './errors.js';

const MiB = 1024 * 1024;
/** Default chunk size. */
export const defaultChunkSize = 8 * MiB;
/** Smallest chunk the uploader shrinks to. */
export const minAdaptiveChunkSize = 64 * 1024;
/** ECR refuses non-final parts under 5 MiB. */
const tooSmallFloor = 5 * MiB;
/** Largest streamed chunk (one request), and the default for a source that can be read again. */
export const maxStreamedChunkSize = 1024 * MiB;
/** Streamed chunks after a large one broke: requests short enough for proxies that cut long ones. */
export const fallbackStreamedChunkSize = 64 * MiB;
/** Streamed chunks grow until one request takes about this long. */
const streamedChunkSeconds = 8;

/**
 * True for GHCR. Parsed references already spell hosts in lower case; this
 * is also called with hosts library users pass as written (`GHCR.io`).
 */
export function isGhcr(host: string): boolean {
  return host.toLowerCase() === 'ghcr.io';
}

/** Default chunk size for a registry host: 4 MiB for ghcr.io (its PATCH limit), else 8 MiB. */
export function defaultChunkSizeFor(host: string): number {
  return isGhcr(host) ? 4 * MiB : defaultChunkSize;
}

/**
 * Default chunk size when chunks stream from a source that can be read
 * again (nothing held in memory): 4 MiB for ghcr.io, else
 * {@link maxStreamedChunkSize}: a blob up to that size goes in one request,
 * as skopeo and crane send it, since every request ends with the link idle
 * while the registry writes the chunk away.
 */
export function defaultStreamedChunkSizeFor(host: string): number {
  return isGhcr(host) ? 4 * MiB : maxStreamedChunkSize;
}

/** Error text of a "too large" answer (GHCR's 416, proxies' 413). */
export const tooLargeText = /exceed|too large|maximum|limit/i;

/**
 * The next streamed chunk size after a chunk of `length` bytes took
 * `seconds`: large enough for about {@link streamedChunkSeconds} of sending
 * at the rate just seen, never smaller than `current`, at most `ceiling`.
 */
export function grownStreamedChunkSize(current: number, length: number, seconds: number, ceiling: number): number {
  if (length < current || seconds <= 0) return current;
  const wanted = Math.floor(((length / seconds) * streamedChunkSeconds) / MiB) * MiB;
  return Math.max(current, Math.min(ceiling, wanted));
}

/** The chunk size of one upload and what the registry said about sizes so far. */
export class ChunkSizer {
  /** Size of the next chunk. */
  size: number;
  /** `OCI-Chunk-Min-Length` of the session. */
  private minChunk = 0;
  /** Largest size streamed chunks may grow to by timing; 0 (no growth) after a "too large" answer or a failed grown chunk. */
  private ceiling: number;
  /** Largest chunk the registry took; smallest it refused as too large; largest it refused as too small. */
  private accepted = 0;
  private tooLarge = Infinity;
  private tooSmall = 0;

  constructor(
    private readonly host: string,
    initial: number,
    private readonly maxChunk: number,
    /** Whether the size may grow with the rate seen (streamed chunks of the default size). */
    private readonly grows: boolean,
  ) {
    this.size = Math.max(1, initial);
    this.ceiling = grows ? maxStreamedChunkSize : 0;
  }

  /** A session's `OCI-Chunk-Min-Length`. */
  setMinimum(min: number | undefined): void {
    this.minChunk = min ?? 0;
    if (this.size < this.minChunk) this.size = this.minChunk;
  }

  /** A chunk of `length` bytes was taken, after `seconds`. */
  taken(length: number, seconds?: number): void {
    this.accepted = Math.max(this.accepted, length);
    if (seconds !== undefined && this.ceiling > this.size) {
      this.size = grownStreamedChunkSize(this.size, length, seconds, Math.min(this.ceiling, this.tooLarge - 1));
    }
  }

  /**
   * A chunk of `length` broke on the way (a proxy may cut large bodies
   * short): no more growth, back to the largest size taken, or to
   * {@link fallbackStreamedChunkSize} when a large first chunk broke.
   */
  broke(length: number): void {
    // A size the caller chose stays.
    if (!this.grows || (this.ceiling === 0 && length <= fallbackStreamedChunkSize)) return;
    this.ceiling = 0;
    if (this.accepted > 0 && this.size > this.accepted) this.size = this.accepted;
    else if (this.accepted === 0 && length > fallbackStreamedChunkSize) this.size = Math.max(fallbackStreamedChunkSize, this.minChunk);
  }

  /**
   * A chunk of `refused` bytes was "too large": the next is the largest size
   * taken before (a chunk grown past what a proxy allows), else half. Sizes
   * stay between the largest refused as too small and the smallest refused as
   * too large; when no size is left between them the upload fails.
   */
  shrink(err: RegistryError, refused: number): void {
    this.ceiling = 0;
    this.tooLarge = Math.min(this.tooLarge, refused);
    let next = this.accepted > 0 && this.accepted < refused ? this.accepted : Math.floor(refused / 2);
    next = Math.max(next, this.minChunk, minAdaptiveChunkSize);
    if (next <= this.tooSmall) next = Math.floor((this.tooSmall + this.tooLarge) / 2);
    if (next >= refused || !this.fits(next)) {
      throw new OciError(
        'REGISTRY',
        `${this.host} refuses chunks of ${this.tooLarge} bytes as too large${this.tooSmall ? ` and of ${this.tooSmall} bytes as too small` : ' and does not accept smaller ones'}`,
        { cause: err },
      );
    }
    this.size = next;
  }

  /** A chunk of `refused` bytes was "too small" (ECR): double it, at least 5 MiB, below any size refused as too large. */
  grow(err: RegistryError, refused: number): void {
    this.tooSmall = Math.max(this.tooSmall, refused);
    let next = Math.min(this.maxChunk, Math.max(refused * 2, tooSmallFloor));
    if (next >= this.tooLarge) next = Math.floor((this.tooSmall + this.tooLarge) / 2);
    if (next <= refused || !this.fits(next)) {
      throw new OciError(
        'REGISTRY',
        `${this.host} refuses chunks of ${this.tooSmall} bytes as too small${Number.isFinite(this.tooLarge) ? ` and of ${this.tooLarge} bytes as too large` : ''}`,
        { cause: err },
      );
    }
    this.size = next;
  }

  /** Whether a chunk size lies strictly between the sizes refused so far, with room to matter (64 KiB). */
  private fits(size: number): boolean {
    return size > this.tooSmall && size < this.tooLarge && this.tooLarge - this.tooSmall > minAdaptiveChunkSize;
  }
}
