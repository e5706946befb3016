/**
 * Answers a registry's `401` challenges (distribution token auth: "Token
 * Authentication Specification", "OAuth2 Token Authentication"; RFC 7617
 * Basic): fetches Bearer tokens from the realm with the right scopes and
 * caches them, or sends Basic credentials. One Authenticator per registry
 * host, shared by every concurrent request to it.
 */
import { OciError } from '../../errors.js';
import { redactUrl } from '../../secrets/redact.js';
import { parseErrorBody, RegistryError, readCapped } from '../errors.js';
import type { Transport } from '../transport.js';
import { type Challenge, parseWwwAuthenticate, preferredChallenge } from './challenge.js';
import type { Credentials } from './credentials.js';
import { type IssuedToken, mergeScopes, type Scope, TokenCache, tokenCacheKey } from './token-cache.js';

/** Options of {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** Registry API host (`host[:port]`); with the token realm and service, the token cache key. */
  host: string;
  /** Loads credentials once, on the first challenge (may run a credential helper). */
  credentials: () => Promise<Credentials | undefined>;
  transport: Transport;
  tokenCache?: TokenCache;
  /** OAuth2 client id sent with refresh-token grants. */
  clientId?: string;
}

/** What to do about missing or refused credentials. */
export const loginHint = 'log in with `oci-os login` (or `docker login`), pass --username with --password-stdin, or set OCI_OS_USERNAME and OCI_OS_PASSWORD';

/** Token-server answer (distribution token auth, "Token Response Fields"). */
interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
  /** The scopes granted, space-separated (RFC 6749 §5.1: sent when they differ from those asked for). */
  scope?: string;
}

/** Authorization for one registry host. */
export class Authenticator {
  readonly host: string;
  readonly tokenCache: TokenCache;
  private scheme: 'none' | 'basic' | 'bearer' = 'none';
  private bearer?: { realm: string; service?: string };
  private creds?: Promise<Credentials | undefined>;
  private loaded?: Credentials;

  constructor(private readonly options: AuthenticatorOptions) {
    this.host = options.host;
    this.tokenCache = options.tokenCache ?? new TokenCache();
  }

  private credentials(): Promise<Credentials | undefined> {
    this.creds ??= this.options.credentials().then((c) => {
      this.loaded = c;
      return c;
    });
    return this.creds;
  }

  /** Where the tokens of the current token server are cached. */
  private tokenKey(): string {
    return tokenCacheKey(this.host, this.bearer);
  }

  /** The `Authorization` value to send now for `scopes`, from what is known, or undefined. */
  current(scopes: readonly Scope[]): string | undefined {
    if (this.loaded?.registryToken) return `Bearer ${this.loaded.registryToken}`;
    if (this.scheme === 'basic' && this.loaded?.username !== undefined) return basicHeader(this.loaded);
    if (this.scheme === 'bearer') {
      const t = this.tokenCache.get(this.tokenKey(), scopes);
      if (t) return `Bearer ${t}`;
    }
    return undefined;
  }

  /**
   * An `Authorization` for `scopes`, fetching a token when the registry is
   * known to use Bearer auth and none is cached (so a request whose body can
   * only be sent once is not answered 401). Undefined when no auth is known
   * to be needed.
   */
  async prepare(scopes: readonly Scope[], signal?: AbortSignal): Promise<string | undefined> {
    const now = this.current(scopes);
    if (now || this.scheme !== 'bearer' || !this.bearer) return now;
    const token = await this.tokenCache.getOrFetch(this.tokenKey(), scopes, () => this.fetchToken(this.bearer!, scopes, signal));
    return `Bearer ${token}`;
  }

  /**
   * Handles a 401: parses the challenge, drops the refused token, gets a new
   * one (or Basic credentials) and returns the `Authorization` to retry with.
   * Throws AUTH_FAILED when there is nothing better to send.
   */
  async respond(wwwAuthenticate: string | string[] | undefined, scopes: readonly Scope[], refused: string | undefined, signal?: AbortSignal): Promise<string> {
    const challenge = preferredChallenge(parseWwwAuthenticate(wwwAuthenticate));
    const creds = await this.credentials();
    if (!challenge) {
      throw new OciError('AUTH_FAILED', `${this.host} refused the request (401) without saying how to authenticate`, { hint: loginHint });
    }
    if (challenge.scheme === 'basic') {
      this.scheme = 'basic';
      if (creds?.username === undefined || creds.password === undefined) {
        throw new OciError('AUTH_FAILED', `${this.host} requires a username and password`, { hint: loginHint });
      }
      const header = basicHeader(creds);
      if (refused === header) {
        throw new OciError('AUTH_FAILED', `${this.host} rejected the username and password`, { hint: loginHint });
      }
      return header;
    }
    if (challenge.scheme === 'bearer') {
      if (creds?.registryToken && refused === `Bearer ${creds.registryToken}`) {
        throw new OciError('AUTH_FAILED', `${this.host} rejected the registry token from the auth file`, { hint: loginHint });
      }
      const realm = challenge.params.realm;
      if (!realm) throw new OciError('AUTH_FAILED', `${this.host} sent a Bearer challenge without a realm`);
      // The refused token came from the token server known until now.
      if (refused?.startsWith('Bearer ') && this.bearer) this.tokenCache.invalidate(this.tokenKey(), refused.slice(7));
      this.scheme = 'bearer';
      this.bearer = { realm, service: challenge.params.service };
      const all = mergeScopes(scopes, challengeScopes(challenge));
      const token = await this.tokenCache.getOrFetch(this.tokenKey(), all, () => this.fetchToken(this.bearer!, all, signal));
      const header = `Bearer ${token}`;
      if (header === refused) {
        throw new OciError('AUTH_FAILED', `${this.host} refused a fresh token for ${all.join(' ')}`, {
          hint: creds ? 'the account may lack push or pull access to this repository' : loginHint,
        });
      }
      return header;
    }
    throw new OciError('UNSUPPORTED', `${this.host} asks for "${challenge.scheme}" authentication, which oci-os does not support`);
  }

  /** Gets a token from the realm: OAuth2 refresh-token POST when there is an identity token, else GET with Basic credentials. */
  private async fetchToken(bearer: { realm: string; service?: string }, scopes: readonly Scope[], signal?: AbortSignal): Promise<IssuedToken> {
    const creds = await this.credentials();
    let realm: URL;
    try {
      realm = new URL(bearer.realm);
    } catch {
      throw new OciError('AUTH_FAILED', `${this.host} sent an invalid token realm`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new OciError('AUTH_FAILED', `${this.host} sent a token realm that is not http(s)`);
    }
    const transport = this.options.transport;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: this.options.clientId ?? 'oci-os' });
      if (bearer.service) form.set('service', bearer.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      const res = await transport.request({
        method: 'POST',
        url: realm,
        signal,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
      });
      if (res.status !== 404 && res.status !== 405) return this.readToken(res, 'POST', realm, !!creds);
      await res.body.dump().catch(() => undefined);
    }
    const url = new URL(realm);
    if (bearer.service) url.searchParams.set('service', bearer.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const basic = creds?.username !== undefined && creds.password !== undefined ? basicHeader(creds) : undefined;
    const res = await transport.request({ method: 'GET', url, authorization: basic, authorizedOrigin: url.origin, signal });
    return this.readToken(res, 'GET', url, !!basic);
  }

  private async readToken(res: Awaited<ReturnType<Transport['request']>>, method: string, url: URL, hadCreds: boolean): Promise<IssuedToken> {
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => undefined);
      throw new OciError(
        'AUTH_FAILED',
        hadCreds ? `the token server of ${this.host} rejected the credentials (${res.status})` : `${this.host} requires authentication`,
        { hint: loginHint },
      );
    }
    if (res.status !== 200) {
      const body = parseErrorBody(await readCapped(res.body));
      throw new RegistryError({
        status: res.status,
        method,
        url,
        body,
        message: `token server ${redactUrl(url.origin)} of ${this.host} answered ${res.status}`,
      });
    }
    let json: TokenResponse;
    try {
      json = JSON.parse((await readCapped(res.body, 1024 * 1024)).toString('utf8')) as TokenResponse;
    } catch {
      throw new OciError('AUTH_FAILED', `the token server of ${this.host} answered something that is not JSON`);
    }
    const token = json.token || json.access_token;
    if (!token) throw new OciError('AUTH_FAILED', `the token server of ${this.host} answered without a token`);
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60;
    // An empty `scope` is taken as not saying: read as "nothing granted", a sloppy server would cost a token fetch per request.
    const scope = typeof json.scope === 'string' ? json.scope.split(' ').filter(Boolean) : [];
    return { token, expiresIn, ...(scope.length ? { scope } : {}) };
  }
}

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

/** The scopes a challenge names (`scope="a b"`). */
function challengeScopes(c: Challenge): Scope[] {
  return (c.params.scope ?? '').split(' ').filter(Boolean);
}
