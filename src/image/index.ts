/**
 * Container images from OS trees: reproducible layers, config, base images
 * and a confined unpack. `src/index.ts` can re-export
 * this module as a whole.
 */

export { type CopiedBlob, copyBlobs } from '../copy/blob.js';
export { type BuiltImage, buildImage, type ImageBuildOptions, type ImageLayer } from './build.js';
export { ByteReader } from './byte-reader.js';
export { type CompressionOptions, compressLayer, type LayerCompression, layerMediaType, resolveCompression } from './compress.js';
export {
  type ConfigOverrides,
  configPlatform,
  type ExecConfig,
  epochTimestamp,
  type HistoryEntry,
  type ImageConfig,
  mergeExecConfig,
  parseBaseConfig,
  parseCommand,
  parseKeyValue,
  parsePort,
  parseStopSignal,
  serializeConfig,
} from './config.js';
export { decompress } from './decompress.js';
export { buildOptionsFromInputs, type ImageBuildInputs, keyValues } from './inputs.js';
export { type BuiltLayer, checkLayerPath, type LayerBuildOptions, layerDiffId, layerEntries, layerTar, pushLayer } from './layer.js';
export { compileExcludes, isExcluded, type NormalizeOptions, normalizeMtime, parseOwner, parseSourceDateEpoch } from './normalize.js';
export {
  defaultPlatform,
  formatPlatform,
  hostPlatform,
  knownArch,
  knownOs,
  normalizeArchitecture,
  type ParsePlatformOptions,
  parsePlatform,
  platformFromProductVariant,
  platformMatches,
  samePlatform,
} from './platform.js';
export { isAttestation, selectFromIndex } from './platform-select.js';
export { buildImageTo, type ImageBuildReport, type ImageBuildToOptions } from './publish.js';
export { entryComponents, resolveDirectory } from './secure-path.js';
export { type ImageSource, imageConfigMediaTypes, openImage, readImage, tarLayerMediaTypes } from './source.js';
export { BLOCK, END_OF_ARCHIVE, encodeTarHeader, paddingFor, type TarEntry, type TarEntryType } from './tar/header.js';
export { openTarFile, readTarInput, relativeEntryName } from './tar/input.js';
export { parsePaxRecords, readTar, type TarReadEntry } from './tar/reader.js';
export { type EntryWithContent, writeTar } from './tar/writer.js';
export { checkTreeRoot, deviceNumbers, type TreeEntry, walkTree } from './tree.js';
export { applyLayer, finishUnpack, startUnpack, type UnpackReport, type UnpackState, unpackImage } from './unpack.js';
export { canReadXattrs, canWriteXattrs, readTreeXattrs } from './xattrs.js';
