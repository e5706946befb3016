/**
 * Building an OS image into a local location (`oci:DIR[:TAG]`,
 * `oci-archive:FILE[:TAG]`): the whole image or nothing becomes visible.
 */
import { OciLayout } from '../ocilayout/layout.js';
import { formatLocalLocation, parseLocalLocation } from '../ocilayout/location.js';
import { openLocalForWriting } from '../ocilayout/open.js';
import { type BuiltOsImage, buildOsImage, checkOsImageBuild, type OsImageBuildOptions } from './builder.js';

export interface LocalBuildResult extends BuiltOsImage {
  /** The location written, with its tag. */
  output: string;
  tag: string;
  /**
   * Images the layout's index.json lists after the build (`oci:` only).
   * Monogon's layout reader accepts exactly one.
   */
  images?: number;
}

/**
 * Builds into `dest`; the tag (default `latest`) is written last, and on any
 * failure (or `signal` abort) blobs written so far are removed again.
 */
export async function buildOsImageToLocal(dest: string, options: OsImageBuildOptions, signal?: AbortSignal): Promise<LocalBuildResult> {
  const loc = parseLocalLocation(dest);
  const tag = loc.tag ?? 'latest';
  // Bad inputs are refused before the destination is created (a new layout directory would be made, then removed).
  const checked = await checkOsImageBuild(options);
  const store = await openLocalForWriting(loc);
  try {
    const built = await buildOsImage(store, { ...options, signal: signal ?? options.signal }, checked);
    await store.tag(built.descriptor, tag);
    await store.commit();
    options.progress?.({ type: 'tag', tag, reference: formatLocalLocation({ ...loc, tag, digest: undefined }) });
    const result: LocalBuildResult = { ...built, output: formatLocalLocation({ ...loc, tag, digest: undefined }), tag };
    // Counted once committed, with tags other writers committed meanwhile; the build stands if the count cannot be read.
    const images =
      store instanceof OciLayout
        ? await store.readIndex().then(
            (index) => index.manifests.length,
            () => undefined,
          )
        : undefined;
    return images === undefined ? result : { ...result, images };
  } catch (err) {
    await store.abort();
    throw err;
  }
}
