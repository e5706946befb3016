/**
 * `WWW-Authenticate` parsing (RFC 9110 §11.6.1, distribution token auth
 * "How to authenticate"): one or more challenges, each a scheme followed by
 * comma-separated `key=value` or `key="quoted value"` parameters.
 */

/** One authentication challenge. Parameter names are lowercased. */
export interface Challenge {
  /** Lowercased scheme: `bearer`, `basic`, … */
  scheme: string;
  params: Record<string, string>;
}

/** Parses every challenge of a `WWW-Authenticate` header value (or several values). */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const out: Challenge[] = [];
  const s = header;
  let i = 0;
  let current: Challenge | undefined;
  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && /[!#$%&'*+.^_`|~0-9A-Za-z/-]/.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const token = readToken();
    if (token === '') {
      i++;
      continue;
    }
    skipWs();
    if (s[i] === '=' && current) {
      i++;
      skipWs();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const start = i;
        while (i < s.length && s[i] !== ',' && s[i] !== ' ' && s[i] !== '\t') i++;
        value = s.slice(start, i);
      }
      current.params[token.toLowerCase()] = value;
    } else if (s[i] === '=' && !current) {
      // a token68 without scheme: ignore
      while (i < s.length && s[i] !== ',') i++;
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      out.push(current);
      // token68 form (`Negotiate abc==`) is kept as param `token68`
      skipWs();
      const rest = s.slice(i);
      const m = /^([A-Za-z0-9._~+/-]+=*)\s*(?:,|$)/.exec(rest);
      if (m && !/^[A-Za-z0-9._~+/-]+\s*=[^=]/.test(rest)) {
        current.params.token68 = m[1]!;
        i += m[1]!.length;
      }
    }
  }
  return out;
}

/** The Bearer challenge if any, else the Basic one, else the first. */
export function preferredChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? challenges[0];
}
