/**
 * A layout's two top-level files: `oci-layout` (the format's version) and
 * `index.json` (the images, by tag). Reading checks them as far as the
 * rest relies on them; writing them is the layout's (atomically, under its
 * lock).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fsError, OciError } from '../errors.js';
import type { Descriptor, ImageIndex } from '../oci/descriptor.js';
import { isDigest } from '../oci/digest.js';
import { Annotation, MediaType } from '../oci/mediatypes.js';

/** The oci-layout file exactly as the format's reference builder writes it. */
export const OCI_LAYOUT_FILE = '{"imageLayoutVersion": "1.0.0"}\n';

/** A change to index.json: tag → descriptor. */
export interface PendingTag {
  tag: string;
  desc: Descriptor;
}

/** Fails unless `dir` holds an oci-layout file of the version this reads. */
export async function checkLayoutFile(dir: string): Promise<void> {
  const file = join(dir, 'oci-layout');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new OciError('NOT_FOUND', `${dir} is not an OCI image layout (no oci-layout file)`);
    }
    throw fsError(err, file, 'read');
  }
  // A malformed oci-layout is bad input (exit 2), as a malformed index.json is: no content failed a check.
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new OciError('INVALID_ARGUMENT', `${file} is not valid JSON`);
  }
  if (!isObject(parsed)) throw new OciError('INVALID_ARGUMENT', `${file} is not a JSON object`);
  const version = parsed.imageLayoutVersion;
  if (version !== '1.0.0') throw new OciError('UNSUPPORTED', `${file}: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
}

/**
 * Reads index.json (an empty index when the file is missing), checked as
 * far as resolving and merging tags rely on it. Messages name it `shownAs`
 * when given (the directory is not what the user named).
 */
export async function readIndexFile(file: string, shownAs?: string): Promise<ImageIndex> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    throw fsError(err, file, 'read');
  }
  const name = shownAs ?? file;
  const invalid = (what: string): OciError => new OciError('INVALID_ARGUMENT', `${name} ${what}`);
  const invalidEntry = (i: number, what: string): OciError => new OciError('INVALID_ARGUMENT', `${name}: manifests[${i}] ${what}`);
  let index: ImageIndex;
  try {
    index = JSON.parse(text) as ImageIndex;
  } catch {
    throw invalid('is not valid JSON');
  }
  if (!isObject(index)) throw invalid('is not a JSON object');
  if (!Array.isArray(index.manifests)) throw invalid('has no manifests array');
  index.manifests.forEach((d: unknown, i) => {
    if (!isObject(d)) throw invalidEntry(i, `is ${d === null ? 'null' : Array.isArray(d) ? 'an array' : `a ${typeof d}`}, not a descriptor object`);
    if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalidEntry(i, 'has no mediaType');
    if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw invalidEntry(i, `has no valid digest (${shown(d.digest)})`);
    if (!Number.isSafeInteger(d.size) || (d.size as number) < 0) throw invalidEntry(i, `has no valid size (${shown(d.size)})`);
    if (d.annotations !== undefined && !isObject(d.annotations)) throw invalidEntry(i, 'has annotations that are not an object');
  });
  return index;
}

/** `index` with `tags` set, in order: an entry holding a tag already loses it (tags move; other images stay). */
export function withTags(index: ImageIndex, tags: readonly PendingTag[]): ImageIndex {
  let manifests = index.manifests;
  for (const { tag, desc } of tags) {
    manifests = manifests.filter((d) => d.annotations?.[Annotation.refName] !== tag);
    const entry: Descriptor = { ...desc, annotations: { ...(desc.annotations ?? {}), [Annotation.refName]: tag } };
    manifests.push(orderDescriptor(entry));
  }
  const out: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  if (index.annotations) out.annotations = index.annotations;
  return out;
}

/** Descriptor keys in the order the image-spec's Go types serialize them. */
function orderDescriptor(d: Descriptor): Descriptor {
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.urls) out.urls = d.urls;
  if (d.annotations) out.annotations = d.annotations;
  if (d.data) out.data = d.data;
  if (d.platform) out.platform = d.platform;
  if (d.artifactType) out.artifactType = d.artifactType;
  return out as unknown as Descriptor;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON value for a message, cut short. */
function shown(v: unknown): string {
  const s = v === undefined ? 'missing' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
