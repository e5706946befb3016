/** The public surface of the oci-os library. */

export { decodeSeekTable, encodeSeekTable, type SeekFrame } from './codec/seek-table.js';
export { decodeZstdStream } from './codec/zstd-stream.js';
export type { ByteSource, CommittableStore, ContentStore, PushStreamOptions, StoredBlob } from './content/store.js';
export { type CopiedContent, type CopyOptions, type CopyResult, childrenOf, readManifestBytes } from './copy/graph.js';
export * from './copy/locations.js';
export type { PushedBlob, PushReport } from './copy/push-report.js';
export * from './errors.js';
export * as image from './image/index.js';
export * from './oci/descriptor.js';
export * from './oci/digest.js';
export { canonicalJson } from './oci/json.js';
export * from './oci/mediatypes.js';
export { OciArchiveWriter, openArchiveForReading, packLayout, unpackArchive } from './ocilayout/archive.js';
export { OciLayout } from './ocilayout/layout.js';
export { formatLocalLocation, type LocalLocation, parseLocalLocation } from './ocilayout/location.js';
export { buildOsImageToLocal, type LocalBuildResult } from './osimage/build-local.js';
export { type BuiltOsImage, type BuiltPayload, buildOsImage, checkPayloadInputs, type OsImageBuildOptions, type PayloadInput } from './osimage/builder.js';
export { type ExtractResult, extractPayloadTo, extractPayloadToFile } from './osimage/extract.js';
export * from './osimage/format.js';
export { type Compression, type EncodedPayload, encodePayload, type PayloadEncoding, resolveEncoding } from './osimage/payload.js';
export { defaultCacheDir, PayloadCache } from './osimage/payload-cache.js';
export {
  ChunkHashMismatchError,
  ChunkVerifier,
  type PayloadVerification,
  type ReadPayloadOptions,
  readPayload,
  verifyPayload,
} from './osimage/payload-reader.js';
export { readProductInfoFile } from './osimage/product-file.js';
export { pushOsImage } from './osimage/push.js';
export { findPayload, isOsImageManifest, type OsImage, type OsImagePayload, parseOsImageConfig, parseOsImageManifest, readOsImage } from './osimage/reader.js';
export type { ProgressEvent, ProgressSink } from './progress/events.js';
export { expandGitDescribe, type GitOptions, type GitProvenance, gitAnnotations, gitDescribe, readGitProvenance } from './provenance/git.js';
export {
  type LoginOptions,
  type LoginResult,
  type LoginTarget,
  type LogoutResult,
  login,
  logout,
  parseLoginTarget,
  verifyCredentials,
} from './registry/auth/login.js';
export { authFileForWriting, authKeyFor, eraseCredentials, type LoginCredentials, storeCredentials } from './registry/auth/store.js';
export { fetchBlobResumable, type ResumableFetchOptions } from './registry/fetch-resume.js';
export * from './registry/index.js';
export {
  type AttachFile,
  type AttachOptions,
  type AttachResult,
  addToFallbackIndex,
  attach,
  type ListReferrersOptions,
  listReferrers,
  type ReferrersList,
  referrersTag,
} from './registry/referrers.js';
export { createRegistryHandler, defaultListenAddress, parseListenAddress, startRegistryServer } from './server/index.js';
export { copyGraph } from './tasks/copy-graph.js';
export { buildIndexTo, type IndexBuildOptions, type IndexBuildReport } from './tasks/index-image.js';
export { type Inspection, type InspectSummary, inspect, renderSummary } from './tasks/inspect.js';
export { pushFromLocal } from './tasks/push-local.js';
export { platformOfManifest, type SelectedRoot, selectRoot } from './tasks/select-root.js';
export { type TransferOptions, type TransferResult, transfer } from './tasks/transfer.js';
export { type VerifyOptions, type VerifyResult, verifyGraph } from './tasks/verify.js';
export { formatSize, parseSize } from './util/size.js';
