/** Opening a local location (`oci:` or `oci-archive:`) as a store for writing. */
import type { CommittableStore } from '../content/store.js';
import { OciArchiveWriter } from './archive.js';
import { OciLayout } from './layout.js';
import type { LocalLocation } from './location.js';

/** Opens a local location for writing; nothing is visible there until commit(). */
export async function openLocalForWriting(loc: LocalLocation): Promise<CommittableStore> {
  return loc.kind === 'oci' ? OciLayout.open(loc.path, { create: true }) : OciArchiveWriter.open(loc.path);
}
