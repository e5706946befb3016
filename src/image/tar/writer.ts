/**
 * Serializing normalized entries into tar bytes, yielded as fresh buffers
 * of 1 MiB (the last shorter) that the consumer may keep: headers, content
 * and padding are written in place into each buffer (frames.ts).
 * Nothing else is held.
 */

import { type EntryWithContent, tarFrames } from './frames.js';

export type { EntryWithContent } from './frames.js';

const PIECE = 1 << 20;

/** Yields the bytes of a tar archive holding `entries`, in order, ended by the end-of-archive marker. */
export function writeTar(entries: AsyncIterable<EntryWithContent>): AsyncGenerator<Buffer> {
  return tarFrames(entries, PIECE);
}
