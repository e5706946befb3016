/** Media types from the OCI image spec 1.1, Docker's schema 2, and the OS image format. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** Docker image manifest schema 1 (unsigned and signed); read by nothing in oci-os, refused by name. */
  dockerSchema1Manifest: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  /**
   * The artifact manifest of image-spec 1.1 release candidates (dropped from
   * 1.1.0, still found in referrers fallback indexes): references its blobs
   * in `blobs`, has no config.
   */
  ociArtifactManifest: 'application/vnd.oci.artifact.manifest.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  octetStream: 'application/octet-stream',
  zstd: 'application/zstd',
} as const;

/** Manifest media types oci-os accepts when reading. */
export const manifestMediaTypes: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
/** Index media types oci-os accepts when reading. */
export const indexMediaTypes: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt !== undefined && manifestMediaTypes.includes(mt);
}
export function isIndexMediaType(mt: string | undefined): boolean {
  return mt !== undefined && indexMediaTypes.includes(mt);
}

/** Manifests a graph walk (copy, verify) follows: image manifests and indexes (OCI, Docker) and the OCI artifact manifest. */
export function isGraphManifestMediaType(mt: string | undefined): boolean {
  return isManifestMediaType(mt) || isIndexMediaType(mt) || mt === MediaType.ociArtifactManifest;
}

/** What a registry keeps under `/manifests/`: the manifests a walk follows, and Docker schema 1. */
export function isRegistryManifestMediaType(mt: string | undefined): boolean {
  return isGraphManifestMediaType(mt) || mt === MediaType.dockerSchema1Manifest || mt === MediaType.dockerSchema1Signed;
}

/** Annotation keys used by oci-os. */
export const Annotation = {
  refName: 'org.opencontainers.image.ref.name',
  title: 'org.opencontainers.image.title',
  created: 'org.opencontainers.image.created',
  revision: 'org.opencontainers.image.revision',
  source: 'org.opencontainers.image.source',
} as const;
