/**
 * What an OS image build takes and gives (builder.ts builds; build-checks.ts
 * checks the same options before anything is stored).
 */
import type { Descriptor } from '../oci/descriptor.js';
import type { ProgressSink } from '../progress/events.js';
import type { ProductInfo } from './format.js';
import type { PayloadEncoding } from './payload.js';
import type { PayloadCache } from './payload-cache.js';

/** A payload to put into the image: its name and the file it is read from. */
export interface PayloadInput {
  name: string;
  path: string;
}

/** Options of buildOsImage. Zero values mean the defaults. */
export interface OsImageBuildOptions {
  payloads: PayloadInput[];
  productInfo?: Partial<ProductInfo>;
  encoding?: PayloadEncoding;
  /** Add `org.opencontainers.image.title` to payload layers (default true). */
  layerTitles?: boolean;
  /** Manifest annotations (image-spec annotations.md), written as the manifest's last field; none by default. */
  annotations?: Record<string, string>;
  /** Payloads processed at once (default 1; each payload already uses every core). */
  jobs?: number;
  /** Reuse blobs of unchanged payloads already in the store (see payload-cache.ts). */
  cache?: PayloadCache;
  /** Called once a payload's blob is stored. */
  onPayloadDone?: (p: BuiltPayload) => void;
  /** Stops the build between two frames with an ABORTED error. */
  signal?: AbortSignal;
  /** Receives blob and manifest events (blob-progress counts uncompressed payload bytes read). */
  progress?: ProgressSink;
}

/** One payload as it ended up in the image. */
export interface BuiltPayload {
  name: string;
  size: number;
  digest: string;
  blobSize: number;
  mediaType: string;
  chunkCount: number;
  /** True when an unchanged payload's blob was already in the store and was not encoded again. */
  reused: boolean;
}

/** What buildOsImage stored. */
export interface BuiltOsImage {
  manifest: Buffer;
  /** Descriptor of the manifest, ready to be tagged (its artifactType set as the format's builder sets it in index.json). */
  descriptor: Descriptor;
  config: Buffer;
  configDescriptor: Descriptor;
  payloads: BuiltPayload[];
}
