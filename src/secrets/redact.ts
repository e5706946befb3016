/**
 * Redaction of secrets from what oci-os prints. Upload `Location`s, token
 * realms and redirect targets (signed object-store URLs) can carry tokens in
 * their query string; credentials can sit in a URL's user-info. Nothing in
 * the registry client prints a URL without passing it through here
 * (distribution-spec, "Pushing blobs": Locations are opaque).
 *
 * It imports nothing, so that every layer, errors.ts included, can use it.
 */

/** Query parameters that never hold secrets and help when reading an error. */
const safeParams = new Set(['digest', 'mount', 'from', 'n', 'last', 'tag', 'service', 'scope']);

/** A URL with user-info removed and every query value but the known-safe ones replaced by `REDACTED`. */
export function redactUrl(url: string | URL): string {
  // User-info goes first, as text: `user:pw@host/v2/x` does not parse as a URL, or parses as one with the scheme `user:`.
  const s = String(url).replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, '$1');
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    const q = s.indexOf('?');
    return q < 0 ? s : `${s.slice(0, q)}?REDACTED`;
  }
  const params = [...u.searchParams.entries()];
  if (params.length > 0) {
    const parts = params.map(([k, v]) => `${encodeURIComponent(k)}=${safeParams.has(k) ? encodeURIComponent(v) : 'REDACTED'}`);
    u.search = `?${parts.join('&')}`;
  }
  u.hash = '';
  return u.toString();
}

/** A digest (image-spec descriptor grammar); it never holds "@". */
// The digest grammar, with an encoded part of a hash's length: `localhost:5000` after an "@" is a host, not a digest.
const digestRe = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

// The registry-host rules of references live here, not in reference.ts, because reference.ts imports this module.
/** Docker's reference grammar for a registry `host[:port]`: dot-separated labels or `[v6]`, any case. */
export const registryHostRe = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/i;

/**
 * True when the first path component of a reference names a registry host
 * rather than a repository component: it holds a dot or a port, is
 * `localhost` (any case) or is `[v6]` (Docker's rule).
 */
export function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || /^localhost$/i.test(component) || component.startsWith('[');
}

/** True when `s` starts with what references take for a registry host (a dot, a port, `localhost` or `[v6]`). */
function startsWithHost(s: string): boolean {
  const host = s.replace(/[/?#][\s\S]*$/, '');
  return registryHostRe.test(host) && looksLikeHost(host);
}

/**
 * What a user typed (a reference, a login target) with the password of its
 * user-info replaced: `https://ci:S3CRET@host` becomes `https://ci:***@host`,
 * `ci:S3CRET@host/repo` becomes `ci:***@host/repo`. With a scheme a lone user
 * name (often a token) is hidden too; without one only `user:password@`
 * followed by a host counts, so `name:tag@sha256:...` stays as it is.
 * `always`: where "@" can only end user-info (a login target), all before
 * it counts, with or without a scheme.
 */
export function redactUserinfo(text: string, options: { always?: boolean } = {}): string {
  const scheme = /^\s*[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0] ?? '';
  const rest = text.slice(scheme.length);
  // Only the last "@" can start a digest; user-info then ends at the one before.
  let at = rest.lastIndexOf('@');
  if (at >= 0 && !options.always && digestRe.test(rest.slice(at + 1))) at = at > 0 ? rest.lastIndexOf('@', at - 1) : -1;
  if (at < 0) return text;
  const userinfo = rest.slice(0, at);
  const after = rest.slice(at + 1);
  const colon = userinfo.indexOf(':');
  // Without a scheme, `host:port/repo:tag@…` and `host/repo:tag@…` are references gone wrong, not user-info:
  // a user name holds no "/", and a password that starts like a port and a path is taken for one.
  const reference = colon >= 0 && (userinfo.slice(0, colon).includes('/') || /^\d+\//.test(userinfo.slice(colon + 1)));
  if (!scheme && !options.always && (colon < 0 || reference || !startsWithHost(after))) return text;
  // A user name holds no "@" or "/": with one, what looks like one is part of the secret.
  const user = colon < 0 ? '' : userinfo.slice(0, colon);
  return `${scheme}${colon < 0 || /[@/]/.test(user) ? '' : `${user}:`}***@${after}`;
}

/** Names of fields and parameters that hold secrets (JSON keys, form and query parameters, headers). */
const secretNames =
  'access_token|refresh_token|id_token|identity_?token|registry_?token|token|password|passwd|client_secret|secret|auth|authorization|x-amz-security-token|x-amz-signature|x-goog-signature';
const secretKeyRe = new RegExp(`^(?:${secretNames})$`, 'i');
/** A JSON field holding a secret, quoted plainly or escaped inside another JSON string. */
const secretJsonFieldRe = new RegExp(`(\\\\?"(?:${secretNames})\\\\?"\\s*:\\s*\\\\?")[^"\\\\]+`, 'gi');
/** A `name=value` form or query parameter holding a secret. */
const secretParamRe = new RegExp(`(^|[?&\\s;,(])((?:${secretNames})=)[^&\\s"'<>;,)]+`, 'gi');

/**
 * Removes things that look like credentials from free text (error bodies a
 * registry or token server sent back): `Bearer`/`Basic` values, any
 * `Authorization` value, JWTs, and secret-named JSON fields and
 * `name=value` parameters (`token`, `access_token`, `refresh_token`,
 * `password`, `auth`…).
 */
export function redactText(text: string): string {
  return text
    .replace(/\b(Bearer|Basic)\s+(?!REDACTED\b)[A-Za-z0-9._~+/=-]+/gi, '$1 REDACTED')
    .replace(/(\bauthorization\s*:\s*)(?!(?:Bearer|Basic) REDACTED\b)((?:Token|Digest|Negotiate|JWT|AWS4-HMAC-SHA256)\s+)?[^\s"',;]+/gi, '$1$2REDACTED')
    .replace(/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, 'REDACTED')
    .replace(secretJsonFieldRe, '$1REDACTED')
    .replace(secretParamRe, '$1$2REDACTED');
}

/** A digest after an "@" (what may end the token: closing punctuation). */
const digestAfterRe = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+[),.;:]*$/;
/** A host (any name; `[v6]`) and optional port at the start of what follows an "@", ending the token or followed by a path. */
const hostAfterRe = /^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::\d{1,5})?(?=[/?#]|[),.;:]*$)/i;

/**
 * Where the user-info of one whitespace- or quote-delimited token ends (see
 * {@link redactCredentials}): `strong` when a host follows it, as in a
 * reference or URL; else the token merely reads as `user:password@…`.
 */
function findUserinfo(token: string): { head: string; rest: string; at: number; strong: boolean } | undefined {
  const scheme = /[a-z][a-z0-9+.-]*:\/\//i.exec(token);
  const head = scheme ? token.slice(0, scheme.index + scheme[0].length) : '';
  const rest = token.slice(head.length);
  const ats: number[] = [];
  for (let i = rest.indexOf('@'); i >= 0; i = rest.indexOf('@', i + 1)) ats.push(i);
  if (ats.length === 0) return undefined;
  const found = (at: number, strong: boolean) => ({ head, rest, at, strong });
  // `host:port/repo…` before an "@" is a reference gone wrong, not `user:password`.
  const portAndPath = (user: string, password: string): boolean => looksLikeHost(user) && /^\d+\//.test(password);
  const userinfoLike = (before: string, strong: boolean): boolean => {
    const colon = before.indexOf(':');
    if (colon < 0) return scheme !== null || !before.includes('/');
    const user = before.slice(0, colon);
    if (user.includes('/')) return false;
    return !portAndPath(user, before.slice(colon + 1)) || (strong && !looksLikeHost(user));
  };
  // First choice: the last "@" followed by a host. With a password or a scheme that is enough; a lone
  // name needs a path after the host (a reference, not an e-mail address).
  for (let k = ats.length - 1; k >= 0; k--) {
    const at = ats[k]!;
    const before = rest.slice(0, at);
    const after = rest.slice(at + 1);
    const host = hostAfterRe.exec(after);
    if (!host || (!scheme && !looksLikeHost(host[1]!) && !/^[^/?#]*:/.test(after))) continue;
    if (!scheme && !before.includes(':') && !after.slice(host[0].length).startsWith('/')) continue;
    if (userinfoLike(before, true)) return found(at, true);
  }
  // Else: the last "@" that does not start a digest, when what is before it reads as user-info and what follows as a reference.
  for (let k = ats.length - 1; k >= 0; k--) {
    const at = ats[k]!;
    const before = rest.slice(0, at);
    const after = rest.slice(at + 1);
    if (digestAfterRe.test(after)) continue;
    if (scheme) return before.includes('/') ? undefined : found(at, false);
    // What follows must read as `host/repo`: `[HOST[:PORT]/]REPO[@DIGEST]` in a hint is no user-info.
    if (!/^[a-z0-9][^/]*\//i.test(after)) return undefined;
    if (before.includes(':') ? userinfoLike(before, false) : !before.includes('/')) return found(at, false);
    return undefined;
  }
  return undefined;
}

/** A token with its user-info hidden. */
function redactToken(token: string): string {
  const u = findUserinfo(token);
  if (!u) return token;
  const userinfo = u.rest.slice(0, u.at);
  const colon = userinfo.indexOf(':');
  // A lone user name is often a token: hidden whole; with a password the user name stays, to say whose it was.
  return `${u.head}${colon < 0 ? '' : `${userinfo.slice(0, colon)}:`}***@${u.rest.slice(u.at + 1)}`;
}

/** True when a reference-like text holds user-info followed by a registry host (`user:pw@host/…`, `token@host/…`). */
export function hasUserinfo(text: string): boolean {
  return text.split(/[\s"'`<>]+/).some((t) => findUserinfo(t)?.strong === true);
}

/**
 * The one sanitizer of what oci-os shows: user-info in any reference- or
 * URL-like text, valid or not (`user:password@host/…`, `token@host/…`,
 * `https://user:pw@…`), and credential-looking values a registry or token
 * server may echo ({@link redactText}). Every error message and every line
 * and JSON document the CLI prints passes through it.
 */
export function redactCredentials(text: string): string {
  if (text === '') return text;
  const masked = text.includes('@') ? text.replace(/[^\s"'`<>]*@[^\s"'`<>]*/g, redactToken) : text;
  return redactText(masked);
}

/**
 * {@link redactCredentials} applied to every string of a JSON-like value;
 * the string values of secret-named fields (`token`, `password`,
 * `Authorization`…) are replaced whole. Returns a copy; values that are
 * not plain objects, arrays or strings are kept as they are.
 */
export function redactValue<T>(value: T): T {
  return redactAny(value, 0) as T;
}

function redactAny(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactCredentials(value);
  if (depth > 64 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactAny(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = typeof v === 'string' && v !== '' && secretKeyRe.test(k) ? 'REDACTED' : redactAny(v, depth + 1);
  }
  return out;
}
