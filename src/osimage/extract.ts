/**
 * Writing one payload of an OS image out, each chunk only after its hash
 * matched (osimage/reader.ts). A regular file is written beside its target
 * and renamed over it at the end (keeping the permissions of a file it
 * replaces), so on failure nothing is left behind;
 * devices and pipes (a disk to write an image to, a FIFO) are written in
 * place.
 */

import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContentStore } from '../content/store.js';
import { readManifestBytes } from '../copy/graph.js';
import { fsError, isOciError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { syncDirectory } from '../util/fs.js';
import { type ReadPayloadOptions, readPayload } from './payload-reader.js';
import { findPayload, isOsImageManifest, readOsImage } from './reader.js';

/** What was written. */
export interface ExtractResult {
  payload: string;
  size: number;
  chunks: number;
  output: string;
}

/** Reads the OS image `root` names; anything else is refused with a clear message. */
async function openImage(store: ContentStore, root: Descriptor): Promise<Awaited<ReturnType<typeof readOsImage>>> {
  const bytes = await readManifestBytes(store, root);
  if (!isOsImageManifest(bytes)) {
    throw new OciError('UNSUPPORTED', `${root.digest} (${root.mediaType}) is not an OS image; extract reads OS image payloads`);
  }
  return readOsImage(store, root, bytes);
}

/** Streams payload `name` of the image `root` into `out` (e.g. stdout); the caller ends `out`. */
export async function extractPayloadTo(
  store: ContentStore,
  root: Descriptor,
  name: string,
  out: Writable,
  options: ReadPayloadOptions = {},
): Promise<ExtractResult> {
  const image = await openImage(store, root);
  const p = findPayload(image, name);
  await pipeline(Readable.from(readPayload(store, image, name, options)), out, { end: false });
  return { payload: name, size: p.size, chunks: p.chunkHashes.length, output: '-' };
}

/** Writes payload `name` of the image `root` to `path`; on failure the target is untouched (regular files) and no partial file remains. */
export async function extractPayloadToFile(
  store: ContentStore,
  root: Descriptor,
  name: string,
  path: string,
  options: ReadPayloadOptions = {},
): Promise<ExtractResult> {
  const image = await openImage(store, root);
  const p = findPayload(image, name);
  let special = false;
  // A file replaced keeps its permissions, and a symbolic link keeps pointing where it did: the
  // payload replaces the file the link names, as writing through the link would.
  let dest = path;
  let mode: number | undefined;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new OciError('INVALID_ARGUMENT', `${path} is a directory; give the file to write the payload to`);
    special = !st.isFile();
    if (!special) {
      dest = await realpath(path);
      mode = st.mode & 0o777;
    }
  } catch (err) {
    if (isOciError(err)) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, path, 'write');
  }
  const target = special ? path : join(dirname(dest), `.${basename(dest)}.oci-os-${randomBytes(6).toString('hex')}`);
  const data = Readable.from(readPayload(store, image, name, options));
  try {
    let file;
    try {
      file = createWriteStream(target, { flags: special ? 'r+' : 'wx' });
      await new Promise<void>((resolve, reject) => {
        file!.once('open', () => resolve());
        file!.once('error', reject);
      });
    } catch (err) {
      throw fsError(err, path, 'write');
    }
    await pipeline(data, file);
    if (!special) {
      const fh = await open(target, 'r');
      try {
        if (mode !== undefined) await fh.chmod(mode);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(target, dest);
      // The rename itself reaches the disk before the payload counts as written.
      await syncDirectory(dirname(dest));
    }
  } catch (err) {
    data.destroy();
    if (!special) await unlink(target).catch(() => undefined);
    if (isOciError(err)) throw err;
    throw fsError(err, path, 'write');
  }
  return { payload: name, size: p.size, chunks: p.chunkHashes.length, output: path };
}
