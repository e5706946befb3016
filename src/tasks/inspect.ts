/**
 * A readable summary of what a location holds: OS images (product info and
 * payloads, manifest and config checked by the verifying reader), container
 * images (platform, layers, config), indexes (their manifests), and any
 * other artifact (config and layers). Blobs other than manifests and
 * configs are not read.
 */

import { fetchAll } from '../content/fetch-all.js';
import type { ContentStore } from '../content/store.js';
import { readManifestBytes } from '../copy/graph.js';
import { OciError } from '../errors.js';
import { readComponents } from '../image/layering/annotations.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/descriptor.js';
import { MAX_CONFIG_BYTES } from '../oci/limits.js';
import { Annotation, isIndexMediaType, MediaType } from '../oci/mediatypes.js';
import type { ProductInfo } from '../osimage/format.js';
import { type IndexEntryProduct, indexEntryProducts } from '../osimage/index-entries.js';
import { isOsImageManifest, readOsImage } from '../osimage/reader.js';
import { printable } from '../util/printable.js';
import { formatSize } from '../util/size.js';

/** Largest config read for a summary (container configs are small; 4 MiB is generous). */

/** One layer or blob as summarized. */
export interface BlobSummary {
  digest: string;
  size: number;
  mediaType: string;
  title?: string;
  /** The components a layer holds (`image build --layering components`). */
  components?: string[];
}

/** The summary part of {@link Inspection}. */
export interface InspectSummary {
  kind: 'os-image' | 'image' | 'index' | 'artifact';
  reference: string;
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  /** OS images. */
  productInfo?: ProductInfo;
  payloads?: Array<{ name: string; size: number; storedSize: number; compression: 'zstd' | 'none'; chunkCount: number; hashChunkSize: number; digest: string }>;
  /** Container images. */
  platform?: Platform;
  created?: string;
  config?: BlobSummary;
  layers?: BlobSummary[];
  /** Indexes. */
  /** Indexes: their entries; OS image entries with the product their config declares. */
  manifests?: Array<{ digest: string; size: number; mediaType: string; platform?: Platform; artifactType?: string; product?: IndexEntryProduct }>;
  /** An image chosen from an index by platform (`inspect --platform`): that index. */
  index?: { digest: string; mediaType: string; size: number };
  annotations?: Record<string, string>;
}

/** Manifest, config and summary of one location. */
export interface Inspection {
  /** The manifest or index bytes exactly as stored. */
  manifestBytes: Buffer;
  manifest: unknown;
  /** The parsed config (images and OS images); undefined for indexes and non-JSON configs. */
  config?: unknown;
  summary: InspectSummary;
}

async function readJsonBlob(store: ContentStore, desc: Descriptor): Promise<unknown> {
  if (!/json/.test(desc.mediaType) || desc.size > MAX_CONFIG_BYTES) return undefined;
  const bytes = await fetchAll(store, desc, { cap: MAX_CONFIG_BYTES, what: `config ${desc.digest}` });
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OciError('INVALID_FORMAT', `config ${desc.digest} is not valid JSON`);
  }
}

const blob = (d: Descriptor): BlobSummary => ({
  digest: d.digest,
  size: d.size,
  mediaType: d.mediaType,
  ...(d.annotations?.[Annotation.title] ? { title: d.annotations[Annotation.title] } : {}),
  ...(readComponents(d) ? { components: readComponents(d) } : {}),
});

/** A layer's components for the table: as many names as fit in about 100 characters. */
function componentsCell(names: string[]): string {
  let out = '';
  for (const [i, n] of names.entries()) {
    if (out.length + n.length > 100) return `${out} …+${names.length - i}`;
    out += (out ? ' ' : '') + n;
  }
  return out;
}

/** Reads and summarizes the manifest or index `root` in `store`. */
export async function inspect(store: ContentStore, root: Descriptor, reference: string): Promise<Inspection> {
  const manifestBytes = await readManifestBytes(store, root);
  const base = { reference, digest: root.digest, mediaType: root.mediaType, size: root.size };
  if (isIndexMediaType(root.mediaType)) {
    const index = JSON.parse(manifestBytes.toString('utf8')) as ImageIndex;
    const products = await indexEntryProducts(store, index.manifests ?? []);
    return {
      manifestBytes,
      manifest: index,
      summary: {
        kind: 'index',
        ...base,
        ...(index.artifactType ? { artifactType: index.artifactType } : {}),
        manifests: (index.manifests ?? []).map((m, i) => ({
          digest: m.digest,
          size: m.size,
          mediaType: m.mediaType,
          ...(m.platform ? { platform: m.platform } : {}),
          ...(m.artifactType ? { artifactType: m.artifactType } : {}),
          ...(products[i] ? { product: products[i] } : {}),
        })),
        ...(index.annotations ? { annotations: index.annotations } : {}),
      },
    };
  }
  if (isOsImageManifest(manifestBytes)) {
    const image = await readOsImage(store, root, manifestBytes);
    return {
      manifestBytes,
      manifest: image.manifest,
      config: image.config,
      summary: {
        kind: 'os-image',
        ...base,
        artifactType: image.manifest.artifactType,
        productInfo: image.productInfo,
        config: blob(image.manifest.config),
        payloads: image.payloads.map((p) => ({
          name: p.name,
          size: p.size,
          storedSize: p.layer.size,
          compression: p.compression,
          chunkCount: p.chunkHashes.length,
          hashChunkSize: p.hashChunkSize,
          digest: p.layer.digest,
        })),
        ...(image.manifest.annotations ? { annotations: image.manifest.annotations } : {}),
      },
    };
  }
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as ImageManifest;
  } catch {
    throw new OciError('INVALID_FORMAT', `manifest ${root.digest} is not valid JSON`);
  }
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new OciError('INVALID_FORMAT', `manifest ${root.digest} lacks config or layers`);
  const containerConfig = manifest.config.mediaType === MediaType.ociConfig || manifest.config.mediaType === MediaType.dockerConfig;
  const config = await readJsonBlob(store, manifest.config);
  const summary: InspectSummary = {
    kind: containerConfig && !manifest.artifactType ? 'image' : 'artifact',
    ...base,
    ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
    config: blob(manifest.config),
    layers: manifest.layers.map(blob),
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  };
  if (containerConfig && config && typeof config === 'object') {
    const c = config as { os?: string; architecture?: string; variant?: string; created?: string };
    if (c.os || c.architecture) summary.platform = { os: c.os ?? '', architecture: c.architecture ?? '', ...(c.variant ? { variant: c.variant } : {}) };
    if (c.created) summary.created = c.created;
  }
  return { manifestBytes, manifest, config, summary };
}

/** Renders a summary as aligned text lines; every value goes through {@link printable}. */
export function renderSummary(s: InspectSummary): string {
  const lines: string[] = [];
  const kv = (k: string, v: string | number | undefined): void => {
    if (v !== undefined && v !== '') lines.push(`${(k + ':').padEnd(15)}${printable(v)}`);
  };
  const plat = (p?: Platform): string | undefined => (p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : undefined);
  kv('Reference', s.reference);
  kv('Kind', s.kind);
  kv('Digest', s.digest);
  kv('From index', s.index?.digest);
  kv('Media type', s.mediaType);
  kv('Artifact type', s.artifactType);
  kv('Size', s.size);
  if (s.productInfo) {
    const p = s.productInfo;
    kv('Product', [p.name || p.id, p.version].filter(Boolean).join(' '));
    kv('Product id', p.id);
    kv('Variant', p.variant);
    kv('Commit', p.commit_hash ? `${p.commit_hash}${p.build_tree_dirty ? ' (dirty)' : ''}` : undefined);
    kv('Commit date', p.commit_date);
    for (const c of p.components ?? []) kv('Component', `${c.id} ${c.version}`);
  }
  kv('Platform', plat(s.platform));
  kv('Created', s.created);
  if (s.config) kv('Config', `${s.config.digest} (${s.config.mediaType}, ${s.config.size} B)`);
  const annotations = Object.entries(s.annotations ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (annotations.length > 0) lines.push('Annotations:', ...annotations.map(([k, v]) => `  ${printable(k)}=${printable(v)}`));
  if (s.payloads) {
    lines.push(
      '',
      table(
        ['PAYLOAD', 'SIZE', 'STORED', 'COMPRESSION', 'CHUNKS'],
        s.payloads.map((p) => [p.name, formatSize(p.size), formatSize(p.storedSize), p.compression, String(p.chunkCount)]),
      ),
    );
  } else if (s.layers) {
    if (s.layers.some((l) => l.components)) {
      lines.push(
        '',
        table(
          ['LAYER', 'SIZE', 'MEDIA TYPE', 'COMPONENTS'],
          s.layers.map((l) => [l.title ?? l.digest, formatSize(l.size), l.mediaType, componentsCell(l.components ?? [])]),
        ),
      );
    } else
      lines.push(
        '',
        table(
          ['LAYER', 'SIZE', 'MEDIA TYPE'],
          s.layers.map((l) => [l.title ?? l.digest, formatSize(l.size), l.mediaType]),
        ),
      );
  }
  if (s.manifests?.some((m) => m.product)) {
    lines.push(
      '',
      table(
        ['MANIFEST', 'PLATFORM', 'PRODUCT', 'VERSION', 'VARIANT', 'SIZE'],
        s.manifests.map((m) => [
          m.digest,
          plat(m.platform) ?? m.artifactType ?? '-',
          m.product ? m.product.name || m.product.id || '-' : (m.artifactType ?? '-'),
          m.product?.version || '-',
          m.product?.variant || '-',
          String(m.size),
        ]),
      ),
    );
  } else if (s.manifests) {
    lines.push(
      '',
      table(
        ['MANIFEST', 'PLATFORM', 'SIZE', 'MEDIA TYPE'],
        s.manifests.map((m) => [m.digest, plat(m.platform) ?? m.artifactType ?? '-', String(m.size), m.mediaType]),
      ),
    );
  }
  return lines.join('\n');
}

function table(head: string[], rawRows: unknown[][]): string {
  const rows = rawRows.map((r) => r.map(printable));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('')).join('\n');
}
