/**
 * Container images from OS trees: reproducible layers, config, base images,
 * multi-platform indexes and a confined unpack. `src/index.ts` can re-export
 * this module as a whole.
 */
export { buildImage, type BuiltImage, type ImageBuildOptions, type ImageLayer } from './build.js';
export { buildImageTo, type ImageBuildReport, type ImageBuildToOptions } from './publish.js';
export { buildIndexTo, type IndexBuildOptions, type IndexBuildReport } from './index-image.js';
export { unpackImage, startUnpack, applyLayer, finishUnpack, type UnpackReport, type UnpackState } from './unpack.js';
export { openImage, readImage, selectFromIndex, imageConfigMediaTypes, tarLayerMediaTypes, type ImageSource } from './source.js';
export { pushLayer, layerDiffId, layerTar, layerEntries, checkLayerPath, type BuiltLayer, type LayerBuildOptions } from './layer.js';
export { compressLayer, layerMediaType, resolveCompression, type CompressionOptions, type LayerCompression } from './compress.js';
export { decompress } from './decompress.js';
export { copyBlobs, type CopiedBlob } from '../copy/blob.js';
export {
  mergeExecConfig, parseBaseConfig, parseCommand, parseKeyValue, parsePort, parseStopSignal, serializeConfig, configPlatform, epochTimestamp,
  type ConfigOverrides, type ExecConfig, type HistoryEntry, type ImageConfig,
} from './config.js';
export { buildOptionsFromInputs, keyValues, type ImageBuildInputs } from './inputs.js';
export { compileExcludes, isExcluded, normalizeMtime, parseOwner, parseSourceDateEpoch, type NormalizeOptions } from './normalize.js';
export { defaultPlatform, formatPlatform, hostPlatform, knownArch, knownOs, normalizeArchitecture, parsePlatform, platformFromProductVariant, platformMatches, samePlatform, type ParsePlatformOptions } from './platform.js';
export { isAttestation, platformOfManifest, selectRoot, type SelectedRoot } from './platform-select.js';
export { entryComponents, resolveDirectory } from './secure-path.js';
export { encodeTarHeader, paddingFor, BLOCK, END_OF_ARCHIVE, type TarEntry, type TarEntryType } from './tar/header.js';
export { readTarInput, openTarFile, relativeEntryName } from './tar/input.js';
export { readTar, parsePaxRecords, type TarReadEntry } from './tar/reader.js';
export { ByteReader } from './byte-reader.js';
export { writeTar, type EntryWithContent } from './tar/writer.js';
export { walkTree, deviceNumbers, checkTreeRoot, type TreeEntry } from './tree.js';
export { canReadXattrs, canWriteXattrs, readTreeXattrs } from './xattrs.js';
