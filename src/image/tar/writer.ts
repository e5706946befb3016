/**
 * Serializing normalized entries into tar bytes, yielded as fresh buffers
 * of 1 MiB (the last shorter) that the consumer may keep: headers, content
 * and padding are written in place into each buffer (frames.ts).
 * Nothing else is held.
 */

import { tarFrames } from './frames.js';
import type { TarEntry } from './header.js';

/** An entry to write, with its content: a file to read (its path as bytes when not UTF-8), or bytes from a stream (files only). */
export interface EntryWithContent {
  entry: TarEntry;
  source?: string | Buffer;
  content?: AsyncIterable<Uint8Array>;
}

const PIECE = 1 << 20;

/** Yields the bytes of a tar archive holding `entries`, in order, ended by the end-of-archive marker. */
export function writeTar(entries: AsyncIterable<EntryWithContent>): AsyncGenerator<Buffer> {
  return tarFrames(entries, PIECE);
}
