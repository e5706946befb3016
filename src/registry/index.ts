/**
 * The registry client (distribution-spec v1.1): references, transport,
 * auth, retries, resumable chunked uploads and a ContentStore per
 * repository. `src/index.ts` re-exports from here.
 */
export { RegistryClient, type RegistryClientOptions } from './client.js';
export { RegistryRepository, manifestAccept, maxManifestBytes, type BlobPushOptions, type BlobPushResult, type RepositoryDefaults } from './repository.js';
export { ChunkedUpload, defaultChunkSize, defaultChunkSizeFor, defaultStreamedChunkSizeFor, grownStreamedChunkSize, maxStreamedChunkSize, parseUploadRange, withDigest, type ChunkedUploadOptions, type UploadResult, type UploadSession } from './upload.js';
export { ChunkSource } from './chunk-source.js';
export { RegistryHttp, parseWarnings, type RegistryHttpOptions, type SendRequest } from './http.js';
export { Transport, type TransportOptions, type TransportRequest, type TransportResponse, type RequestBody } from './transport.js';
export { RegistryError, TransportError, parseErrorBody, readCapped, mapTransportError, type RegistryErrorEntry, type ErrorBody } from './errors.js';
export { RetryPolicy, parseRetryAfter, retryableStatuses, type RetryOptions, type RetryEvent } from './retry.js';
export { parseReference, formatReference, manifestReference, isLoopbackHost, dockerHubRegistry, dockerHubApiHost, type Reference } from './reference.js';
export { repositoryNameRe as repositoryRe, tagRe } from '../oci/reference-grammar.js';
export { redactUrl, redactText } from './redact.js';
export { parseWwwAuthenticate, preferredChallenge, type Challenge } from './auth/challenge.js';
export { resolveCredentials, readAuthFileCredentials, runCredentialHelper, authFilePaths, configKeysFor, type Credentials, type CredentialOptions } from './auth/credentials.js';
export { TokenCache, pullScope, pushScope, mergeScopes, type Scope, type IssuedToken } from './auth/token-cache.js';
export { Authenticator, type AuthenticatorOptions } from './auth/authenticator.js';
