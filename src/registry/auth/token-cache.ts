/**
 * Bearer tokens by registry host, token server and scope (distribution token
 * auth, "Requesting a Token"). A token for `repository:a:pull,push` also
 * serves a request that only needs `repository:a:pull`. A token is filed
 * under the scope the token server says it granted, which may be less than
 * was asked for (no push access): filed under the request, it would be sent
 * for what it does not cover and refused. Concurrent requests for the same
 * scopes share one fetch. Tokens are dropped a little before they expire.
 */

/** A scope string: `repository:NAME:ACTIONS` (or `registry:catalog:*`). */
export type Scope = string;

/** Pull scope of a repository. */
export function pullScope(repository: string): Scope {
  return `repository:${repository}:pull`;
}

/** Push scope of a repository (push needs pull too: HEAD before upload). */
export function pushScope(repository: string): Scope {
  return `repository:${repository}:pull,push`;
}

/** Parses scopes into resource → actions. Unparseable scopes are kept whole as their own resource. */
export function parseScopes(scopes: readonly Scope[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of scopes) {
    for (const one of s.split(' ').filter(Boolean)) {
      const i = one.lastIndexOf(':');
      const resource = i > 0 ? one.slice(0, i) : one;
      const actions =
        i > 0
          ? one
              .slice(i + 1)
              .split(',')
              .filter(Boolean)
          : [];
      const set = out.get(resource) ?? new Set<string>();
      for (const a of actions) set.add(a);
      out.set(resource, set);
    }
  }
  return out;
}

/** Merges scope lists into canonical strings (sorted resources, sorted actions). */
export function mergeScopes(...lists: Array<readonly Scope[]>): Scope[] {
  const m = parseScopes(lists.flat());
  return [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([r, acts]) => (acts.size ? `${r}:${[...acts].sort().join(',')}` : r));
}

function covers(have: Map<string, Set<string>>, want: Map<string, Set<string>>): boolean {
  for (const [res, acts] of want) {
    const h = have.get(res);
    if (!h) return false;
    if (!h.has('*')) for (const a of acts) if (!h.has(a)) return false;
  }
  return true;
}

/**
 * The cache key of a registry host's tokens from one token server: a realm
 * or service that changes (a new challenge) is a different issuer, whose
 * tokens the old ones must not stand in for.
 */
export function tokenCacheKey(host: string, issuer?: { realm: string; service?: string }): string {
  return JSON.stringify([host, issuer?.realm ?? '', issuer?.service ?? '']);
}

/** Most tokens kept; the oldest go first (a long copy touches many repositories, each with its own scope). */
const maxEntries = 100;

interface Entry {
  key: string;
  scopes: Map<string, Set<string>>;
  token: string;
  expiresAt: number;
}

/** A token and its lifetime as a token server gave it. */
export interface IssuedToken {
  token: string;
  /** Seconds; 60 when the server did not say (distribution token spec default). */
  expiresIn: number;
  /** The scopes the server says it granted (its `scope` field), when it says; else those asked for are assumed. */
  scope?: Scope[];
}

/**
 * Tokens by key ({@link tokenCacheKey}: host and token server) and scope;
 * safe to share between concurrent uploads and between registries.
 */
export class TokenCache {
  private readonly entries: Entry[] = [];
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A valid token under `key` covering every scope, if one is cached. */
  get(key: string, scopes: readonly Scope[]): string | undefined {
    const want = parseScopes(scopes);
    const t = this.now();
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.expiresAt <= t) {
        this.entries.splice(i, 1);
        continue;
      }
      if (e.key === key && covers(e.scopes, want)) return e.token;
    }
    return undefined;
  }

  /**
   * Stores a token asked for `scopes`, under the scope it was granted when
   * the server said so. It is considered gone 10% of its lifetime (at most
   * 10 s) before it expires.
   */
  set(key: string, scopes: readonly Scope[], issued: IssuedToken): void {
    const lifetime = Math.max(0, issued.expiresIn) * 1000;
    const margin = Math.min(10_000, lifetime * 0.1);
    this.entries.push({ key, scopes: parseScopes(issued.scope ?? scopes), token: issued.token, expiresAt: this.now() + lifetime - margin });
    if (this.entries.length > maxEntries) this.entries.splice(0, this.entries.length - maxEntries);
  }

  /** Drops a token (after the registry refused it). */
  invalidate(key: string, token: string): void {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.key === key && e.token === token) this.entries.splice(i, 1);
    }
  }

  /**
   * A cached token, or the result of `fetch` (called once for concurrent
   * callers asking for the same key and scopes; each of them gets its token,
   * even when it was granted less than asked).
   */
  async getOrFetch(key: string, scopes: readonly Scope[], fetch: () => Promise<IssuedToken>): Promise<string> {
    const cached = this.get(key, scopes);
    if (cached) return cached;
    const flight = `${key} ${mergeScopes(scopes).join(' ')}`;
    let p = this.inflight.get(flight);
    if (!p) {
      p = (async () => {
        try {
          const issued = await fetch();
          this.set(key, scopes, issued);
          return issued.token;
        } finally {
          this.inflight.delete(flight);
        }
      })();
      this.inflight.set(flight, p);
    }
    return p;
  }
}
