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
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    const s = String(url);
    const q = s.indexOf('?');
    return q < 0 ? s : `${s.slice(0, q)}?REDACTED`;
  }
  u.username = '';
  u.password = '';
  const params = [...u.searchParams.entries()];
  if (params.length > 0) {
    const parts = params.map(([k, v]) => `${encodeURIComponent(k)}=${safeParams.has(k) ? encodeURIComponent(v) : 'REDACTED'}`);
    u.search = `?${parts.join('&')}`;
  }
  u.hash = '';
  return u.toString();
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
