/**
 * Reading files whose size is known from lstat: small ones in one read,
 * large ones in 1 MiB pieces. A file that is shorter or longer than its
 * size by the time it is read fails the build (a tree being written to
 * cannot give a reproducible layer).
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { OciError, fsError } from '../errors.js';
import { readFileFrames } from '../build/frames.js';

const PIECE = 1 << 20;

/** The error for a file whose size is not what lstat said by the time it is read. */
export function changed(path: string): OciError {
  return new OciError('INPUT_UNREADABLE', `${path} changed while it was read; build from a tree that is not being written to`);
}

/**
 * Reads a file of known size in one read (no fstat, no chunking); fails with
 * INPUT_UNREADABLE when it is shorter or longer than `size` now.
 */
export async function readSmallFile(path: string, size: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw fsError(err, path, 'read');
  }
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > size) break;
    }
    if (filled !== size) throw changed(path);
    return buf.subarray(0, size);
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw fsError(err, path, 'read');
  } finally {
    await fh.close();
  }
}

/** Reads exactly `size` bytes of a file in pieces, failing when it is shorter or longer. */
export async function* readExactly(path: string, size: number): AsyncGenerator<Buffer> {
  let pos = 0;
  for await (const piece of readFileFrames(path, PIECE)) {
    pos += piece.length;
    if (pos > size) throw changed(path);
    yield piece;
  }
  if (pos !== size) throw changed(path);
}

/**
 * Opens a file for synchronous positioned reads; fails with INPUT_UNREADABLE
 * naming it. Non-blocking, so a file swapped for a FIFO since it was listed
 * fails instead of stalling the main thread (regular files ignore the flag).
 */
export function openSyncForRead(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw fsError(err, path, 'read');
  }
}

/** One synchronous positioned read into `buf`; fails with INPUT_UNREADABLE naming the file. */
export function readSyncAt(fd: number, path: string, buf: Uint8Array, offset: number, length: number, position: number): number {
  try {
    return readSync(fd, buf, offset, length, position);
  } catch (err) {
    throw fsError(err, path, 'read');
  }
}

/** Closes a descriptor opened for reading; a failing close of a read-only file loses nothing. */
export function closeSyncQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // nothing was written through it
  }
}
