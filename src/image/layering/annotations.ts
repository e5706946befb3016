/**
 * The layering plan, recorded in each layer's descriptor annotations so
 * that the next build (`--previous`) and `inspect` can read it:
 * `org.oci-os.layer.components`, a JSON array of the component names the
 * layer holds, sorted; at most {@link MAX_COMPONENTS_BYTES} bytes. A longer
 * list is cut and ends with `"…+N"`, and such a layer is never kept by a
 * later build (it cannot know all its components).
 *
 * Whether a layer's content is unchanged is for its DiffID to say
 * (keep.ts). Images built by earlier versions also carry a content digest,
 * `org.oci-os.layer.content`; it is not needed, and ignored.
 */
import type { Descriptor } from '../../oci/descriptor.js';

export const COMPONENTS_ANNOTATION = 'org.oci-os.layer.components';
/** Bound on the components annotation of one layer. */
export const MAX_COMPONENTS_BYTES = 32 << 10;

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

/** The annotations of a layer holding the components named. */
export function layerAnnotations(names: string[]): Record<string, string> {
  return { [COMPONENTS_ANNOTATION]: componentsValue(names) };
}

/** A layer of a previous image, as its annotations describe it. */
export interface PreviousLayer {
  descriptor: Descriptor;
  diffID: string;
  /** All its components, or undefined when the list was cut. */
  components?: string[];
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
    const diffID = diffIds[i];
    if (!names || diffID === undefined) return;
    const cut = names.length > 0 && names[names.length - 1]!.startsWith('…+');
    out.push({ descriptor: d, diffID, components: cut ? undefined : names });
  });
  return out;
}
