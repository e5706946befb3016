/**
 * OS images in image indexes: what an entry says about the OS image it
 * names (product, version, variant), read from the image's config with the
 * verifying reader, for `inspect` of an index.
 */
import pLimit from 'p-limit';
import type { ContentStore } from '../content/store.js';
import { readManifestBytes } from '../copy/graph.js';
import type { Descriptor } from '../oci/descriptor.js';
import { MediaType } from '../oci/mediatypes.js';
import { OS_IMAGE_ARTIFACT_TYPE } from './format.js';
import { isOsImageManifest, readOsImage } from './reader.js';

/** The product an index entry's OS image declares. */
export interface IndexEntryProduct {
  id: string;
  name: string;
  version: string;
  variant: string;
}

/** Whether an index entry says it is an OS image (`artifactType`, as `image index` and `push --index-tag` write it). */
export function isOsImageEntry(desc: Descriptor): boolean {
  return desc.artifactType === OS_IMAGE_ARTIFACT_TYPE;
}

/**
 * The product of every OS image entry of an index (undefined for other
 * entries), `jobs` manifests and configs read at once. Entries without
 * `artifactType` (tools that copy an index may drop it, as skopeo 1.9
 * does) are OS images when their manifest says so: OCI manifests without
 * it are read to find out.
 */
export async function indexEntryProducts(store: ContentStore, entries: readonly Descriptor[], jobs = 4): Promise<Array<IndexEntryProduct | undefined>> {
  const limit = pLimit(jobs);
  return Promise.all(
    entries.map((e) => {
      const maybe = isOsImageEntry(e) || (e.artifactType === undefined && e.mediaType === MediaType.ociManifest);
      if (!maybe) return undefined;
      return limit(async () => {
        const desc = { mediaType: e.mediaType, digest: e.digest, size: e.size };
        const bytes = isOsImageEntry(e) ? undefined : await readManifestBytes(store, desc);
        if (bytes && !isOsImageManifest(bytes)) return undefined;
        const p = (await readOsImage(store, desc, bytes)).productInfo;
        return { id: p.id, name: p.name, version: p.version, variant: p.variant };
      });
    }),
  );
}
