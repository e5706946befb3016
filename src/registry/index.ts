/**
 * The registry client (distribution-spec v1.1): references, transport,
 * auth, retries, resumable chunked uploads and a ContentStore per
 * repository. `src/index.ts` re-exports from here.
 */

export { repositoryNameRe as repositoryRe, tagRe } from '../oci/reference-grammar.js';
export { redactText, redactUrl } from '../secrets/redact.js';
export { Authenticator, type AuthenticatorOptions } from './auth/authenticator.js';
export { type Challenge, parseWwwAuthenticate, preferredChallenge } from './auth/challenge.js';
export {
  authFilePaths,
  type CredentialOptions,
  type Credentials,
  configKeysFor,
  readAuthFileCredentials,
  resolveCredentials,
  runCredentialHelper,
} from './auth/credentials.js';
export { type IssuedToken, mergeScopes, pullScope, pushScope, type Scope, TokenCache } from './auth/token-cache.js';
export { defaultChunkSize, defaultChunkSizeFor, defaultStreamedChunkSizeFor, grownStreamedChunkSize, maxStreamedChunkSize } from './chunk-sizing.js';
export { ChunkSource } from './chunk-source.js';
export { RegistryClient, type RegistryClientOptions } from './client.js';
export { type ErrorBody, mapTransportError, parseErrorBody, RegistryError, type RegistryErrorEntry, readCapped, TransportError } from './errors.js';
export { parseWarnings, RegistryHttp, type RegistryHttpOptions, type SendRequest } from './http.js';
export { withDigest } from './monolithic.js';
export { dockerHubApiHost, dockerHubRegistry, formatReference, isLoopbackHost, manifestReference, parseReference, type Reference } from './reference.js';
export { type BlobPushOptions, type BlobPushResult, manifestAccept, maxManifestBytes, RegistryRepository, type RepositoryDefaults } from './repository.js';
export { parseRetryAfter, type RetryEvent, type RetryOptions, RetryPolicy, retryableStatuses } from './retry.js';
export { type RequestBody, Transport, type TransportOptions, type TransportRequest, type TransportResponse } from './transport.js';
export { ChunkedUpload } from './upload.js';
export { type ChunkedUploadOptions, parseUploadRange, type UploadResult, type UploadSession } from './upload-parts.js';
