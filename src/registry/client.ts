/**
 * The registry client facade: one {@link RegistryHttp} per registry host
 * (own connections, TLS settings and Authenticator), one token cache shared
 * by every concurrent request, and `client.repository(ref)` to get a
 * {@link RegistryRepository}. Parallelism is the caller's (p-limit).
 */

import { redactCredentials } from '../secrets/redact.js';
import { type CredentialOptions, type Credentials, resolveCredentials } from './auth/credentials.js';
import { TokenCache } from './auth/token-cache.js';
import { RegistryHttp } from './http.js';
import { parseReference, type Reference } from './reference.js';
import { RegistryRepository, type RepositoryDefaults } from './repository.js';
import { type RetryOptions, RetryPolicy } from './retry.js';
import type { TransportOptions } from './transport.js';

/** Options of {@link RegistryClient}; every field has a default. */
export interface RegistryClientOptions extends TransportOptions, RepositoryDefaults {
  /** Explicit credentials (win over the environment and auth files), for {@link credentialsHost} only. */
  credentials?: Credentials;
  /**
   * The one registry (as references name it: `docker.io`, `ghcr.io`,
   * `localhost:5000`) that {@link credentials} and
   * `OCI_OS_USERNAME`/`OCI_OS_PASSWORD` are for: a client that talks to
   * several registries (a copy) must not hand one registry's password to
   * another, so every other registry gets only what the auth files hold for
   * it. `false`: no registry gets them. Default: the first registry the
   * client is asked for; set it whenever the client may talk to more than one.
   */
  credentialsHost?: string | false;
  /** Environment for `OCI_OS_USERNAME`/`OCI_OS_PASSWORD` and auth-file lookup. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Use only {@link credentials}; ignore environment variables and auth files. */
  explicitCredentialsOnly?: boolean;
  /** Retry settings, or a policy object. */
  retry?: RetryOptions | RetryPolicy;
  /** Called once per distinct `Warning: 299` text a registry sends, and for auth-file entries of the wrong shape (ignored). */
  onWarning?: (message: string, registry: string) => void;
  /** Shared token cache (one is made when not given). */
  tokenCache?: TokenCache;
}

/** Entry point of the registry client. */
export class RegistryClient {
  private readonly hosts = new Map<string, RegistryHttp>();
  private readonly retry: RetryPolicy;
  readonly tokenCache: TokenCache;
  /** The registry explicit credentials are bound to; set on first use when not given. */
  private credentialsHost: string | false | undefined;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.retry = options.retry instanceof RetryPolicy ? options.retry : new RetryPolicy(options.retry);
    this.tokenCache = options.tokenCache ?? new TokenCache();
    this.credentialsHost = options.credentialsHost;
  }

  /** The HTTP client of the registry a reference names. */
  http(ref: Reference): RegistryHttp {
    let h = this.hosts.get(ref.apiHost);
    if (!h) {
      this.credentialsHost ??= ref.registry;
      const credOpts: CredentialOptions = {
        credentials: this.options.credentials,
        credentialsHost: this.credentialsHost,
        env: this.options.env,
        explicitOnly: this.options.explicitCredentialsOnly,
        onWarning: this.options.onWarning ? (m) => this.options.onWarning!(m, ref.registry) : undefined,
      };
      h = new RegistryHttp({
        ...this.options,
        host: ref.apiHost,
        retry: this.retry,
        tokenCache: this.tokenCache,
        credentials: () => resolveCredentials(ref.registry, credOpts),
        // A registry's Warning text is the registry's: it may echo what it was sent.
        onWarning: this.options.onWarning ? (m) => this.options.onWarning!(redactCredentials(m), ref.registry) : undefined,
      });
      this.hosts.set(ref.apiHost, h);
    }
    return h;
  }

  /** A repository by reference (`host/name[:tag][@digest]`); tag and digest are kept on `reference`; `signal` cancels its requests. */
  repository(ref: string | Reference, options: { signal?: AbortSignal } = {}): RegistryRepository {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    return new RegistryRepository(this.http(r), r, { chunkSize: this.options.chunkSize, maxChunkSize: this.options.maxChunkSize, signal: options.signal });
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.close()));
    this.hosts.clear();
  }
}
