/**
 * Route parsing for the distribution-spec endpoints. Repository names may hold
 * several `/` components, so a path is split at its last `/blobs/`,
 * `/manifests/`, `/tags/list` or `/referrers/` segment, and the name is then
 * checked against the spec grammar.
 */
import { digestRe, repositoryNameRe, sha256DigestRe } from '../oci/reference-grammar.js';
import { httpError } from './errors.js';

/** A parsed request path. */
export type Route =
  | { kind: 'base' }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploadStart'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

const patterns: Array<[RegExp, (m: RegExpMatchArray) => Route]> = [
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploadStart', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

/**
 * Parses a URL path (without query). Returns undefined for paths outside
 * the API; throws NAME_INVALID / DIGEST_INVALID for malformed parts.
 */
export function parseRoute(pathname: string): Route | undefined {
  if (pathname === '/v2' || pathname === '/v2/') return { kind: 'base' };
  if (!pathname.startsWith('/v2/')) return undefined;
  const rest = pathname.slice(4);
  for (const [re, build] of patterns) {
    const m = rest.match(re);
    if (!m) continue;
    const route = build(m);
    if (route.kind === 'base') return route;
    checkName(route.name);
    if (route.kind === 'blob' || route.kind === 'referrers') route.digest = checkDigest(decode(route.digest));
    if (route.kind === 'manifest') {
      const ref = decode(route.reference);
      // A tag outside the grammar is left to the endpoint: no manifest has it (404 on a
      // pull), and none can be pushed with it (400 MANIFEST_INVALID).
      route.reference = ref.includes(':') ? checkDigest(ref) : ref;
    }
    if (route.kind === 'upload') route.id = decode(route.id);
    return route;
  }
  return undefined;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Throws 400 NAME_INVALID unless `name` matches the repository name grammar. */
export function checkName(name: string): string {
  if (name.length > 255 || !repositoryNameRe.test(name)) {
    throw httpError(400, 'NAME_INVALID', `invalid repository name "${name}"`, { name });
  }
  return name;
}

/**
 * Throws 400 DIGEST_INVALID unless `d` is a digest this registry can verify
 * (sha256, 64 lowercase hex characters). Anything else is refused wherever
 * a digest is accepted: the registry stores content under sha256 digests
 * only, so it could neither check nor serve other content.
 */
export function checkDigest(d: string): string {
  if (!digestRe.test(d)) throw httpError(400, 'DIGEST_INVALID', `invalid digest "${d}"`, { digest: d });
  if (!sha256DigestRe.test(d)) {
    throw httpError(400, 'DIGEST_INVALID', `unsupported digest "${d}": only sha256 is supported`, { digest: d });
  }
  return d;
}

/** True when a manifest reference is a digest rather than a tag. */
export function isDigestReference(ref: string): boolean {
  return ref.includes(':');
}
