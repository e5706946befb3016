/**
 * The registry client facade: one {@link RegistryHttp} per registry host
 * (own connections, TLS settings and Authenticator), one token cache shared
 * by every concurrent request, and `client.repository(ref)` to get a
 * {@link RegistryRepository}. Parallelism is the caller's (p-limit).
 */
import { resolveCredentials, type CredentialOptions, type Credentials } from './auth/credentials.js';
import { TokenCache } from './auth/token-cache.js';
import { RegistryHttp } from './http.js';
import { parseReference, type Reference } from './reference.js';
import { RegistryRepository, type RepositoryDefaults } from './repository.js';
import { RetryPolicy, type RetryOptions } from './retry.js';
import type { TransportOptions } from './transport.js';

/** Options of {@link RegistryClient}; every field has a default. */
export interface RegistryClientOptions extends TransportOptions, RepositoryDefaults {
  /** Explicit credentials (win over the environment and auth files). */
  credentials?: Credentials;
  /** Environment for `OCI_OS_USERNAME`/`OCI_OS_PASSWORD` and auth-file lookup. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Use only {@link credentials}; ignore environment variables and auth files. */
  explicitCredentialsOnly?: boolean;
  /** Retry settings, or a policy object. */
  retry?: RetryOptions | RetryPolicy;
  /** Called once per distinct `Warning: 299` text a registry sends. */
  onWarning?: (message: string, registry: string) => void;
  /** Shared token cache (one is made when not given). */
  tokenCache?: TokenCache;
}

/** Entry point of the registry client. */
export class RegistryClient {
  private readonly hosts = new Map<string, RegistryHttp>();
  private readonly retry: RetryPolicy;
  readonly tokenCache: TokenCache;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.retry = options.retry instanceof RetryPolicy ? options.retry : new RetryPolicy(options.retry);
    this.tokenCache = options.tokenCache ?? new TokenCache();
  }

  /** The HTTP client of the registry a reference names. */
  http(ref: Reference): RegistryHttp {
    let h = this.hosts.get(ref.apiHost);
    if (!h) {
      const credOpts: CredentialOptions = {
        credentials: this.options.credentials, env: this.options.env, explicitOnly: this.options.explicitCredentialsOnly,
      };
      h = new RegistryHttp({
        ...this.options,
        host: ref.apiHost,
        retry: this.retry,
        tokenCache: this.tokenCache,
        credentials: () => resolveCredentials(ref.registry, credOpts),
        onWarning: this.options.onWarning ? (m) => this.options.onWarning!(m, ref.registry) : undefined,
      });
      this.hosts.set(ref.apiHost, h);
    }
    return h;
  }

  /** A repository by reference (`host/name[:tag][@digest]`); tag and digest are kept on `reference`. */
  repository(ref: string | Reference): RegistryRepository {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    return new RegistryRepository(this.http(r), r, { chunkSize: this.options.chunkSize, maxChunkSize: this.options.maxChunkSize });
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.close()));
    this.hosts.clear();
  }
}
