/**
 * Building an image into a destination location — `oci:DIR[:TAG]`,
 * `oci-archive:FILE[:TAG]` or a registry `HOST/REPO[:TAG]` — and opening
 * the base image with the same registry client. Layers stream straight to
 * the destination; the config, then the manifest, then the tag are written
 * last; a local destination is committed at the end and aborted on failure.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type LocationOptions, openLocationForWriting, parseLocation, type WritableLocation, writeAndSettle } from '../copy/locations.js';
import { OciError } from '../errors.js';
import { archiveLockFile, besideArchivePrefix } from '../ocilayout/archive.js';
import { type BuiltImage, buildImage, type ImageBuildOptions } from './build.js';
import { checkLayerPath } from './layer.js';
import { type ImageSource, openImage } from './source.js';
import type { LeftOutPath } from './tree.js';

/** Options of {@link buildImageTo}. */
export interface ImageBuildToOptions extends Omit<ImageBuildOptions, 'base' | 'layering' | 'tags'> {
  /** Location of the base image (registry reference, `oci:` or `oci-archive:`). */
  base?: string;
  /** As in ImageBuildOptions, with the previous image named by its location. */
  layering?: Omit<NonNullable<ImageBuildOptions['layering']>, 'previous'> & { previous?: string };
}

/** What {@link buildImageTo} wrote. */
export interface ImageBuildReport extends BuiltImage {
  /** The destination with its tag (local) or the reference pushed. */
  output: string;
  tag?: string;
  /** The base image's manifest digest. */
  baseDigest?: string;
}

/** A real path, or the path made absolute when it cannot be resolved. */
async function realOrResolved(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/**
 * What a local destination writes, by real path, to leave out of directory
 * layers that hold it: the layout directory (opening created it), or the
 * archive file with what its writer puts beside it (layout/archive.ts).
 */
async function destinationPaths(out: WritableLocation): Promise<LeftOutPath[]> {
  if (!out.path) return [];
  if (out.kind === 'oci') return [{ path: await realOrResolved(out.path) }];
  const file = join(await realOrResolved(dirname(out.path)), basename(out.path));
  return [{ path: file, siblingPrefix: besideArchivePrefix(file) }, { path: archiveLockFile(file) }];
}

/** Builds an image into `dest`; the whole image or (for local destinations) nothing becomes visible. */
export async function buildImageTo(dest: string, options: ImageBuildToOptions, locations: LocationOptions = {}): Promise<ImageBuildReport> {
  const parsed = parseLocation(dest);
  if (parsed.kind === 'registry' && parsed.digest && !parsed.tag) {
    throw new OciError('INVALID_REFERENCE', `${dest}: an image has no digest before it is built; push to a tag (REPO:TAG)`);
  }
  // Inputs first, so a typo fails before anything is opened or created.
  for (const path of options.layers ?? []) await checkLayerPath(path);
  const base = options.base ? await openImage(options.base, { ...locations, platform: options.platform }) : undefined;
  let previous: ImageSource | undefined;
  try {
    // Read before anything is written: an unreadable previous image fails the build with nothing left behind.
    if (options.layering?.previous) previous = await openImage(options.layering.previous, { ...locations, platform: options.platform });
    const layering = options.layering && { ...options.layering, previous };
    const out = await openLocationForWriting(dest, locations);
    return await writeAndSettle(
      out,
      async () => {
        // A destination inside a directory input would be packed, temporary files and all.
        const leaveOut = [...(options.leaveOut ?? []), ...(await destinationPaths(out))];
        const built = await buildImage(out.store, { ...options, base, leaveOut, layering, tags: out.tag ? [out.tag] : [] });
        return { ...built, output: out.location, tag: out.tag, baseDigest: base?.descriptor.digest };
      },
      { signal: options.signal, message: 'build aborted' },
    );
  } finally {
    await previous?.location.close();
    await base?.location.close();
  }
}
