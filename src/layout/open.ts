/** Opening a local location (`oci:` or `oci-archive:`) as a store for writing. */
import type { CommittableStore } from '../content/store.js';
import { OciLayout } from './layout.js';
import type { LocalLocation } from './location.js';

/** Opens a local location for writing; nothing is visible there until commit(). */
export async function openLocalForWriting(loc: LocalLocation): Promise<CommittableStore> {
  if (loc.kind === 'oci') return OciLayout.open(loc.path, { create: true });
  // Loaded when needed: the tar library is a noticeable part of a command's start.
  const { OciArchiveWriter } = await import('./archive.js');
  return OciArchiveWriter.open(loc.path);
}
