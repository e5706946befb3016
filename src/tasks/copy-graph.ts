/**
 * The graph copy as commands and library users call it: the copy engine
 * (copy/graph.ts) with the rules the formats add to it. An OS image tagged
 * in a layout is listed with the artifactType its format gives it there (its
 * config media type), as when it was built.
 */
import type { ContentStore } from '../content/store.js';
import { type CopyOptions, type CopyResult, copyGraph as copyWithEngine } from '../copy/graph.js';
import type { Descriptor } from '../oci/descriptor.js';
import { indexArtifactType } from '../osimage/reader.js';

/**
 * Copies the graph under `root` from `src` to `dst`, then sets `options.tags`
 * (copy/graph.ts); local destinations still need their commit() afterwards.
 */
export function copyGraph(src: ContentStore, dst: ContentStore, root: Descriptor, options: CopyOptions = {}): Promise<CopyResult> {
  return copyWithEngine(src, dst, root, { ...options, indexArtifactType: options.indexArtifactType ?? indexArtifactType });
}
