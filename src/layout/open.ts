/** Opening a local location (`oci:` or `oci-archive:`) as a store for writing. */
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CommittableStore } from '../content/store.js';
import { OciError, fsError } from '../errors.js';
import { OciLayout } from './layout.js';
import { formatLocalLocation, type LocalLocation } from './location.js';

/**
 * Opens a local location for writing; nothing is visible there until
 * commit(). A location with a digest is refused: a layout finds images by
 * tag, and what is written has no digest before it is written (building
 * into `oci:DIR@sha256:…` would otherwise ignore the digest and tag `latest`).
 */
export async function openLocalForWriting(loc: LocalLocation): Promise<CommittableStore> {
  if (loc.digest) {
    throw new OciError('INVALID_REFERENCE', `${formatLocalLocation(loc)}: a ${loc.kind === 'oci' ? 'layout' : 'archive'} destination is named by tag (${loc.kind}:${loc.path}:TAG), not by digest`);
  }
  if (loc.kind === 'oci') return OciLayout.open(loc.path, { create: true });
  // The archive is written through a temporary layout beside it: a missing or unusable
  // directory would be reported as that directory, not as the file the user named.
  const dir = dirname(loc.path);
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    throw fsError(err, loc.path, 'write');
  }
  // Loaded when needed: the tar library is a noticeable part of a command's start.
  const { OciArchiveWriter } = await import('./archive.js');
  try {
    return await OciArchiveWriter.open(loc.path);
  } catch (err) {
    // mkdtemp in a directory that exists but takes no files (/proc, a read-only mount).
    if (err instanceof OciError && err.code === 'OUTPUT_UNWRITABLE' && err.message.startsWith(`cannot write ${dir}: `)) {
      throw fsError(err.cause ?? err, loc.path, 'write');
    }
    throw err;
  }
}
