/** Opening a local location (`oci:` or `oci-archive:`) as a store for writing. */
import type { CommittableStore } from '../content/store.js';
import { OciError } from '../errors.js';
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
    throw new OciError(
      'INVALID_REFERENCE',
      `${formatLocalLocation(loc)}: a ${loc.kind === 'oci' ? 'layout' : 'archive'} destination is named by tag (${loc.kind}:${loc.path}:TAG), not by digest`,
    );
  }
  if (loc.kind === 'oci') return OciLayout.open(loc.path, { create: true });
  // Loaded when needed: the tar library is a noticeable part of a command's start.
  // A directory that cannot take the archive is reported by the archive's path (OciArchiveWriter.open).
  const { OciArchiveWriter } = await import('./archive.js');
  return OciArchiveWriter.open(loc.path);
}
