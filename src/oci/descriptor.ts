import type { Digest } from './digest.js';

/** OCI content descriptor (image-spec descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: Digest | string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: Platform;
  data?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

/** OCI image manifest (image-spec manifest.md), also covers Docker schema 2. */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** OCI image index (image-spec image-index.md), also covers Docker manifest lists. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A descriptor with only the three required fields, in spec order. */
export function plainDescriptor(d: { mediaType: string; digest: string; size: number }): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}
