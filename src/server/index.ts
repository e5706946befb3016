/**
 * The embedded OCI distribution-spec v1.1 registry: `startRegistryServer`
 * for `oci-os registry serve` and tests, `createRegistryHandler` to mount
 * the handler on a server of one's own.
 */

export { repositoryNameRe, tagRe } from '../oci/reference-grammar.js';
export { basicChallenge, parseHtpasswd } from './auth.js';
export type { RegistryErrorCode } from './errors.js';
export { RegistryHttpError } from './errors.js';
export type { RegistryHandlerOptions, RegistryHooks, RegistryRequestHandler, RequestLogEntry } from './handler.js';
export { createRegistryHandler, defaultMaxManifestBytes } from './handler.js';
export { acceptedManifestTypes } from './manifests.js';
export type { RegistryServerOptions, RunningRegistry } from './server.js';
export { defaultListenAddress, parseListenAddress, startRegistryServer } from './server.js';
