/**
 * The embedded OCI distribution-spec v1.1 registry: `startRegistryServer`
 * for `oci-os registry serve` and tests, `createRegistryHandler` to mount
 * the handler on a server of one's own.
 */
export { startRegistryServer, parseListenAddress, defaultListenAddress } from './server.js';
export type { RegistryServerOptions, RunningRegistry } from './server.js';
export { createRegistryHandler, defaultMaxManifestBytes } from './handler.js';
export type { RegistryHandlerOptions, RegistryHooks, RequestLogEntry, RegistryRequestHandler } from './handler.js';
export { parseHtpasswd, basicChallenge } from './auth.js';
export { RegistryHttpError } from './errors.js';
export type { RegistryErrorCode } from './errors.js';
export { acceptedManifestTypes } from './manifests.js';
export { repositoryNameRe, tagRe } from '../oci/reference-grammar.js';
