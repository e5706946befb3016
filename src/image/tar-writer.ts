/**
 * Serializing normalized entries into tar bytes. Small pieces (headers,
 * small files) are gathered into batches of about 1 MiB before they are
 * yielded; large files are read in 1 MiB pieces. Nothing else is held.
 */
import { readExactly, readSmallFile } from './file-read.js';
import { OciError } from '../errors.js';
import { END_OF_ARCHIVE, encodeTarHeader, paddingFor, type TarEntry } from './tar-header.js';

/** An entry to write, with its content: a file to read (perhaps already being read, `data`), or bytes from a stream (files only). */
export interface EntryWithContent {
  entry: TarEntry;
  source?: string;
  data?: Promise<Buffer>;
  content?: AsyncIterable<Uint8Array>;
}

const BATCH = 1 << 20;
const PIECE = 1 << 20;

/** Yields the bytes of a tar archive holding `entries`, in order, ended by the end-of-archive marker. */
export async function* writeTar(entries: AsyncIterable<EntryWithContent>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const add = (b: Buffer) => {
    pending.push(b);
    pendingBytes += b.length;
  };
  const take = (): Buffer => {
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    return out;
  };
  for await (const { entry, source, data: pending, content } of entries) {
    add(encodeTarHeader(entry));
    if (entry.type === 'file' && entry.size > 0) {
      if (content) {
        let n = 0;
        for await (const c of content) {
          n += c.length;
          if (n > entry.size) throw new OciError('INVALID_FORMAT', `tar entry ${entry.name}: more content than its header's ${entry.size} bytes`);
          add(Buffer.from(c.buffer, c.byteOffset, c.length));
          if (pendingBytes >= BATCH) yield take();
        }
        if (n !== entry.size) throw new OciError('INVALID_FORMAT', `tar entry ${entry.name}: ${n} bytes of content, its header says ${entry.size}`);
      } else if (source && entry.size <= PIECE) {
        add(await (pending ?? readSmallFile(source, entry.size)));
      } else if (source) {
        if (pendingBytes > 0) yield take();
        yield* readExactly(source, entry.size);
      } else {
        throw new OciError('INTERNAL', `tar entry ${entry.name} has no content`);
      }
      const pad = paddingFor(entry.size);
      if (pad > 0) add(Buffer.alloc(pad));
    }
    if (pendingBytes >= BATCH) yield take();
  }
  add(END_OF_ARCHIVE);
  yield take();
}
