/**
 * Choosing one entry of an index by platform — the one implementation
 * behind every command's `--platform` (`pull`, `copy`, `inspect`, `verify`,
 * `extract`, `image unpack`, `image build --base`), from the platforms the
 * index lists. Checking a single manifest against a platform needs the
 * formats' own declarations and is in tasks/select-root.ts.
 */

import { OciError } from '../errors.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/descriptor.js';
import { isManifestMediaType } from '../oci/mediatypes.js';
import { formatPlatform, hostPlatform, platformMatches, samePlatform } from './platform.js';

/** Whether an index entry is an attestation manifest rather than an image (buildx marks them both ways). */
export function isAttestation(desc: Descriptor): boolean {
  if (desc.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return desc.platform?.os === 'unknown' && desc.platform.architecture === 'unknown';
}

/**
 * Picks the manifest for `platform` from an index. With no platform asked
 * for: the only image, else the one for this machine ({@link hostPlatform}).
 * An entry of exactly the platform wins (so `linux/amd64` takes the plain
 * build over `linux/amd64/debug`); else the first whose OS and architecture
 * match, and whose variant too when one is asked for. Attestations are
 * never chosen.
 */
export function selectFromIndex(index: ImageIndex, platform: Platform | undefined, what: string): Descriptor {
  const images = (index.manifests ?? []).filter((m) => isManifestMediaType(m.mediaType) && !isAttestation(m));
  if (!platform && images.length === 1) return images[0]!;
  const want = platform ?? hostPlatform();
  const found = images.find((m) => samePlatform(m.platform, want)) ?? images.find((m) => platformMatches(m.platform, want));
  if (!found) {
    const have = images.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ') || 'none';
    const whose = platform ? '' : " (this machine's platform)";
    throw new OciError('NOT_FOUND', `${what} has no image for ${formatPlatform(want)}${whose} (it has: ${have}); choose one with --platform`);
  }
  return found;
}
