/**
 * The layering plan, recorded in each layer's descriptor annotations so
 * that the next build (`--previous`) and `inspect` can read it:
 *
 * - `org.oci-os.layer.components`: a JSON array of the component names the
 *   layer holds, sorted; at most {@link MAX_COMPONENTS_BYTES} bytes — a
 *   longer list is cut and ends with `"…+N"`, and such a layer is never
 *   kept by a later build (it cannot know all its components);
 * - `org.oci-os.layer.content`: `sha256:` over every component's name and
 *   content digest (its tar headers, file contents and the directories
 *   above it), the test of "nothing in this layer changed".
 */
import { createHash } from 'node:crypto';
import type { Descriptor } from '../../oci/descriptor.js';

export const COMPONENTS_ANNOTATION = 'org.oci-os.layer.components';
export const CONTENT_ANNOTATION = 'org.oci-os.layer.content';
/** Bound on the components annotation of one layer. */
export const MAX_COMPONENTS_BYTES = 32 << 10;

/** Digest of a group of components: their names and content digests, in name order. */
export function groupDigest(members: Array<{ name: string; digest: Buffer }>): string {
  const h = createHash('sha256');
  for (const m of [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(m.name).update('\0').update(m.digest);
  }
  return `sha256:${h.digest('hex')}`;
}

/** The JSON list of names, cut to the bound (ending with "…+N" when cut). */
export function componentsValue(names: string[]): string {
  const sorted = [...names].sort();
  const full = JSON.stringify(sorted);
  if (Buffer.byteLength(full) <= MAX_COMPONENTS_BYTES) return full;
  const kept: string[] = [];
  let size = 16; // brackets, the marker
  for (const n of sorted) {
    const add = Buffer.byteLength(JSON.stringify(n)) + 1;
    if (size + add > MAX_COMPONENTS_BYTES) break;
    kept.push(n);
    size += add;
  }
  return JSON.stringify([...kept, `…+${sorted.length - kept.length}`]);
}

/** The annotations of a layer holding `members`. */
export function layerAnnotations(members: Array<{ name: string; digest: Buffer }>): Record<string, string> {
  return {
    [COMPONENTS_ANNOTATION]: componentsValue(members.map((m) => m.name)),
    [CONTENT_ANNOTATION]: groupDigest(members),
  };
}

/** A layer of a previous image, as its annotations describe it. */
export interface PreviousLayer {
  descriptor: Descriptor;
  diffID: string;
  /** All its components, or undefined when the list was cut. */
  components?: string[];
  content: string;
}

/** The components list of a layer (for inspect): the names, or undefined when the layer has none recorded or it is not a list. */
export function readComponents(d: Descriptor): string[] | undefined {
  const v = d.annotations?.[COMPONENTS_ANNOTATION];
  if (v === undefined) return undefined;
  try {
    const list = JSON.parse(v) as unknown;
    return Array.isArray(list) && list.every((x) => typeof x === 'string') ? list : undefined;
  } catch {
    return undefined;
  }
}

/** The layers of a previous image that carry a plan (others, a base's say, are left out). */
export function previousLayers(layers: Descriptor[], diffIds: string[]): PreviousLayer[] {
  const out: PreviousLayer[] = [];
  layers.forEach((d, i) => {
    const names = readComponents(d);
    const content = d.annotations?.[CONTENT_ANNOTATION];
    if (!names || !content || !/^sha256:[0-9a-f]{64}$/.test(content)) return;
    const cut = names.length > 0 && names[names.length - 1]!.startsWith('…+');
    out.push({ descriptor: d, diffID: diffIds[i]!, components: cut ? undefined : names, content });
  });
  return out;
}
