/**
 * Reading files whose size is known from lstat, with synchronous positioned
 * reads (see tar/frames.ts). A file that is shorter or longer than its size
 * by the time it is read fails the build (a tree being written to cannot
 * give a reproducible layer).
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { fsError, OciError } from '../errors.js';

/** The error for a file whose size is not what lstat said by the time it is read. */
export function changed(path: string): OciError {
  return new OciError('INPUT_UNREADABLE', `${path} changed while it was read; build from a tree that is not being written to`);
}

/**
 * Opens a file for synchronous positioned reads; fails with INPUT_UNREADABLE
 * naming it. Non-blocking, so a file swapped for a FIFO since it was listed
 * fails instead of stalling the main thread (regular files ignore the flag).
 */
export function openSyncForRead(path: string | Buffer): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    // A path that is not UTF-8 comes as bytes (tree.ts); messages show it as text.
    throw fsError(err, String(path), 'read');
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
