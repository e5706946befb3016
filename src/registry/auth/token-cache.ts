/**
 * Bearer tokens by host and scope (distribution token auth, "Requesting a
 * Token"). A token for `repository:a:pull,push` also serves a request that
 * only needs `repository:a:pull`. Concurrent requests for the same scopes
 * share one fetch. Tokens are dropped a little before they expire.
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
      const actions = i > 0 ? one.slice(i + 1).split(',').filter(Boolean) : [];
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

interface Entry {
  host: string;
  scopes: Map<string, Set<string>>;
  token: string;
  expiresAt: number;
}

/** A token and its lifetime as a token server gave it. */
export interface IssuedToken {
  token: string;
  /** Seconds; 60 when the server did not say (distribution token spec default). */
  expiresIn: number;
}

/** Tokens by host and scope; safe to share between concurrent uploads. */
export class TokenCache {
  private readonly entries: Entry[] = [];
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A valid token for `host` covering every scope, if one is cached. */
  get(host: string, scopes: readonly Scope[]): string | undefined {
    const want = parseScopes(scopes);
    const t = this.now();
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.expiresAt <= t) {
        this.entries.splice(i, 1);
        continue;
      }
      if (e.host === host && covers(e.scopes, want)) return e.token;
    }
    return undefined;
  }

  /** Stores a token. It is considered gone 10% of its lifetime (at most 10 s) before it expires. */
  set(host: string, scopes: readonly Scope[], issued: IssuedToken): void {
    const lifetime = Math.max(0, issued.expiresIn) * 1000;
    const margin = Math.min(10_000, lifetime * 0.1);
    this.entries.push({ host, scopes: parseScopes(scopes), token: issued.token, expiresAt: this.now() + lifetime - margin });
  }

  /** Drops a token (after the registry refused it). */
  invalidate(host: string, token: string): void {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.host === host && e.token === token) this.entries.splice(i, 1);
    }
  }

  /**
   * A cached token, or the result of `fetch` (called once for concurrent
   * callers asking for the same host and scopes).
   */
  async getOrFetch(host: string, scopes: readonly Scope[], fetch: () => Promise<IssuedToken>): Promise<string> {
    const cached = this.get(host, scopes);
    if (cached) return cached;
    const key = `${host} ${mergeScopes(scopes).join(' ')}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = (async () => {
        try {
          const issued = await fetch();
          this.set(host, scopes, issued);
          return issued.token;
        } finally {
          this.inflight.delete(key);
        }
      })();
      this.inflight.set(key, p);
    }
    return p;
  }
}
