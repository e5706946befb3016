/**
 * `--layering components`: one directory tree as many layers. The tree is
 * walked once (metadata only, tree-scan.ts), its package databases read,
 * every path assigned to a component, the previous image's unchanged layers
 * found (keep.ts) and the other components packed into layers (plan.ts);
 * then each layer is written by reading its files in walk order, streamed
 * through the tar writer, hashing and compression into the store like any
 * other layer (layer.ts), two layers at once sharing one budget of zstd
 * frames (frame-budget.ts), so the build holds no more than a single-layer
 * build does. A layer the
 * previous image already has with the same content is not written at all:
 * its blob is copied, mounted or found at the destination, as the base
 * image's are.
 */
import { availableParallelism } from 'node:os';
import pLimit from 'p-limit';
import type { ContentStore } from '../../content/store.js';
import { copyBlobs } from '../../copy/blob.js';
import { OciError } from '../../errors.js';
import type { BlobStatus } from '../../progress/events.js';
import { layerMediaType, resolveCompression } from '../compress.js';
import { type BuiltLayer, type LayerBuildOptions, pushEntries } from '../layer.js';
import type { ImageSource } from '../source.js';
import { layerAnnotations, previousLayers } from './annotations.js';
import { readApk, readPacman } from './apk-pacman.js';
import { assignComponents, LARGE_FILE } from './assign.js';
import type { PackageDb } from './db-path.js';
import { readDpkg } from './dpkg.js';
import { FrameBudget } from './frame-budget.js';
import { unchangedLayers } from './keep.js';
import { type LayerPlan, planLayers } from './plan.js';
import { readNixStore, readRpm } from './rpm-nix.js';
import { layerEntries, type ScannedTree, scanTree } from './tree-scan.js';

/** Default and largest --max-layers. */
export const DEFAULT_MAX_LAYERS = 64;
export const MAX_MAX_LAYERS = 250;

/** How a tree is layered by components. */
export interface ComponentLayering {
  /** At most this many layers (default 64, at most 250). */
  maxLayers?: number;
  /** The image this one replaces: its unchanged layers are kept. */
  previous?: ImageSource;
  /** Size from which an unclaimed file is a component of its own. */
  largeFile?: number;
  /** Layers written at once (default: 2 on 2 cores or more). */
  jobs?: number;
}

/** A layer built from components, with what the report shows. */
export interface ComponentLayer extends BuiltLayer {
  annotations: Record<string, string>;
  components: string[];
  /** Taken from the previous image unchanged; `exists` when the destination already had it. */
  reused: boolean;
  status: 'built' | BlobStatus;
}

/** Layers written (or checked) at once. */
const jobsOf = (layering: ComponentLayering): number => Math.max(1, layering.jobs ?? Math.min(2, availableParallelism()));

/** Checks --max-layers. */
export function checkMaxLayers(n: number | undefined): number {
  const v = n ?? DEFAULT_MAX_LAYERS;
  if (!Number.isInteger(v) || v < 1 || v > MAX_MAX_LAYERS) throw new OciError('INVALID_ARGUMENT', `invalid --max-layers ${n}: use 1 to ${MAX_MAX_LAYERS}`);
  return v;
}

/** The package databases the tree records. */
export async function readDatabases(tree: ScannedTree, warnings: string[]): Promise<PackageDb[]> {
  const found = [await readDpkg(tree), await readApk(tree), await readPacman(tree), await readRpm(tree, warnings), readNixStore(tree)];
  return found.filter((d): d is PackageDb => d !== undefined);
}

/** Scans and plans the layers of `root` (nothing is written). */
export async function planTree(
  root: string,
  layering: ComponentLayering,
  options: LayerBuildOptions & { warnings: string[] },
): Promise<{ tree: ScannedTree; plan: LayerPlan; names: string[] }> {
  const maxLayers = checkMaxLayers(layering.maxLayers);
  const tree = await scanTree(root, { ...options.normalize, leaveOut: options.leaveOut }, options.warnings, options.signal);
  const assignment = assignComponents(tree, await readDatabases(tree, options.warnings), layering.largeFile ?? LARGE_FILE);
  let previous = layering.previous ? previousLayers(layering.previous.manifest.layers, layering.previous.config.rootfs.diff_ids) : [];
  if (layering.previous && previous.length === 0) {
    options.warnings.push(
      `${layering.previous.location.location}: no layer records its components (not built with --layering components); layers are packed afresh`,
    );
  }
  // A kept layer keeps its bytes, so only one of the same compression is kept.
  const mediaType = layerMediaType(resolveCompression(options).compression);
  previous = previous.filter((p) => p.descriptor.mediaType === mediaType);
  const kept = previous.length > 0 ? await unchangedLayers(tree, assignment, previous, jobsOf(layering), options.signal) : [];
  const plan = planLayers(tree, assignment, maxLayers, kept);
  return { tree, plan, names: assignment.components.map((c) => c.name) };
}

/** Builds (or takes from the previous image) every layer of the tree at `root` into `store`. */
export async function pushComponentLayers(
  store: ContentStore,
  root: string,
  layering: ComponentLayering,
  options: LayerBuildOptions & { warnings: string[] },
): Promise<ComponentLayer[]> {
  const { tree, plan, names } = await planTree(root, layering, options);
  const limit = pLimit(jobsOf(layering));
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const zstd = resolveCompression(options).compression === 'zstd' ? new FrameBudget() : undefined;
  const jobs = plan.layers.map((layer, n) =>
    limit(async (): Promise<Omit<ComponentLayer, 'annotations' | 'components'>> => {
      signal.throwIfAborted();
      const prev = layer.previous;
      if (prev && layering.previous) {
        const [copied] = await copyBlobs(layering.previous.store, store, [prev.descriptor], { jobs: 1, signal });
        const d = prev.descriptor;
        return {
          digest: d.digest,
          size: d.size,
          diffID: prev.diffID,
          mediaType: d.mediaType,
          tarSize: layer.bytes,
          source: `${root} (layer ${n + 1}, kept)`,
          reused: true,
          status: copied!.status,
        };
      }
      const entries = () => layerEntries(tree, layer.entries);
      const built = await pushEntries(store, entries, `${root} (layer ${n + 1})`, { ...options, signal }, { zstd });
      return { ...built, reused: false, status: 'built' };
    }),
  );
  const annotate = (layers: Array<Omit<ComponentLayer, 'annotations' | 'components'>>): ComponentLayer[] =>
    layers.map((l, n) => {
      const components = plan.layers[n]!.components.map((c) => names[c]!);
      return { ...l, annotations: layerAnnotations(components), components };
    });
  try {
    return annotate(await Promise.all(jobs));
  } catch (err) {
    stop.abort();
    await Promise.allSettled(jobs);
    throw err;
  }
}
