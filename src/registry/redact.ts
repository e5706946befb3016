/**
 * Redaction of secrets from what oci-os prints. Upload `Location`s, token
 * realms and redirect targets (signed object-store URLs) can carry tokens in
 * their query string; credentials can sit in a URL's user-info. Nothing in
 * the registry client prints a URL without passing it through here
 * (distribution-spec, "Pushing blobs": Locations are opaque).
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
  return `${scheme}${colon < 0 ? '' : `${userinfo.slice(0, colon)}:`}***@${after}`;
}

/**
 * Removes things that look like credentials from free text (error bodies a
 * registry or token server sent back): `Bearer`/`Basic` values, JWTs and
 * `token`/`password` JSON fields.
 */
export function redactText(text: string): string {
  return text
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 REDACTED')
    .replace(/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, 'REDACTED')
    .replace(/("(?:access_token|token|refresh_token|password|identitytoken|secret)"\s*:\s*)"[^"]*"/gi, '$1"REDACTED"');
}
