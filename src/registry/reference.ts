/**
 * Image references: `[HOST[:PORT]/]REPO[:TAG][@DIGEST]`, normalized the way
 * Docker does (distribution-spec "Pulling manifests" names and tags; Docker's
 * reference grammar for the host part and the `docker.io` defaults).
 */
import { OciError } from '../errors.js';
import { checkedAlgorithms, isDigest } from '../oci/digest.js';
import { repositoryNameRe, tagRe } from '../oci/reference-grammar.js';
import { hasUserinfo, looksLikeHost, redactCredentials, redactUserinfo, registryHostRe } from '../secrets/redact.js';

/** Registry name used when a reference has no host (Docker Hub). */
export const dockerHubRegistry = 'docker.io';
/** The API host behind {@link dockerHubRegistry}. */
export const dockerHubApiHost = 'registry-1.docker.io';

/** Longest `host[:port]/name` accepted (the limit most clients apply). */
export const maxReferenceNameLength = 255;

/** A parsed, normalized image reference. */
export interface Reference {
  /**
   * Registry as users write it (`docker.io`, `ghcr.io`, `localhost:5000`),
   * in lower case as URLs spell it: host names are case-insensitive, and
   * everything keyed or compared by host (auth files, credentials, chunk-size
   * defaults, plain HTTP for loopback) then sees one spelling.
   */
  registry: string;
  /** Host (and port) the API is served from: `registry-1.docker.io` for Docker Hub, else {@link registry}. */
  apiHost: string;
  /** Repository path, `library/`-prefixed for one-component Docker Hub names. */
  repository: string;
  tag?: string;
  digest?: string;
}

function invalid(input: string, why: string): OciError {
  // `user:password@host/repo` is no reference, and the password is not echoed, however the rest is wrong.
  return new OciError('INVALID_REFERENCE', `invalid reference "${redactCredentials(input)}": ${why}`, {
    hint: 'expected [HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST], e.g. ghcr.io/org/image:1.0',
  });
}

/**
 * A registry host[:port] as references spell it: lower case, with Docker
 * Hub's other names (`index.docker.io`, `registry-1.docker.io`) made
 * {@link dockerHubRegistry}. Does not check the host grammar.
 */
export function normalizeRegistry(host: string): string {
  const r = host.toLowerCase();
  return r === 'index.docker.io' || r === dockerHubApiHost ? dockerHubRegistry : r;
}

/**
 * Parses and normalizes a reference. Throws OciError `INVALID_REFERENCE` with
 * a message that says which part is wrong.
 */
export function parseReference(input: string): Reference {
  const s = input.trim();
  if (s === '') throw invalid(input, 'it is empty');
  // Checked first: other messages quote parts of the input, which could be parts of the password.
  if (redactUserinfo(s) !== s || hasUserinfo(s))
    throw invalid(input, 'a user name and password do not belong in a reference; give them to the login options (--username, --password-stdin)');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw invalid(input, `"${digest}" is not a digest (algorithm:hex)`);
    // Only a digest oci-os can check is worth asking for: what came back could not be verified.
    const alg = digest.slice(0, digest.indexOf(':'));
    const hex = Object.hasOwn(checkedAlgorithms, alg) ? checkedAlgorithms[alg]! : undefined;
    if (hex === undefined) throw invalid(input, `digest algorithm "${alg}" is not supported (supported: ${Object.keys(checkedAlgorithms).join(', ')})`);
    if (!new RegExp(`^${alg}:[a-f0-9]{${hex}}$`).test(digest))
      throw invalid(input, `"${digest}" is not a valid ${alg} digest (${hex} lowercase hex characters)`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagRe.test(tag)) {
      throw invalid(input, `tag "${tag}" must be 1-128 characters of letters, digits, "_", "." and "-", not starting with "." or "-"`);
    }
  }
  let registry = dockerHubRegistry;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0 && looksLikeHost(rest.slice(0, slash))) {
    const host = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!registryHostRe.test(host)) throw invalid(input, `"${host}" is not a valid registry host`);
    const port = /:(\d+)$/.exec(host);
    if (port && Number(port[1]) > 65535) throw invalid(input, `port ${port[1]} is out of range`);
    // Hosts are lower-cased here, once, for everything downstream (see Reference.registry); INDEX.DOCKER.IO becomes Docker Hub too.
    registry = normalizeRegistry(host);
  }
  if (repository === '') throw invalid(input, 'the repository name is missing');
  if (registry === dockerHubRegistry && !repository.includes('/')) repository = `library/${repository}`;
  if (!repositoryNameRe.test(repository)) {
    const why = /[A-Z]/.test(repository)
      ? `repository "${repository}" must be lowercase`
      : `repository "${repository}" must be lowercase letters and digits separated by "/", ".", "_", "__" or "-"`;
    throw invalid(input, why);
  }
  if (registry.length + 1 + repository.length > maxReferenceNameLength) {
    throw invalid(input, `"${registry}/${repository}" is longer than ${maxReferenceNameLength} characters`);
  }
  const apiHost = registry === dockerHubRegistry ? dockerHubApiHost : registry;
  return { registry, apiHost, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The manifest reference to request: the digest when there is one, else the tag, else `latest`. */
export function manifestReference(ref: Reference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** Formats a reference back to its normalized string form. */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** True for hosts on the loopback interface (`localhost`, 127.0.0.0/8, `[::1]`), with or without a port, in any case. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.replace(/:\d+$/, '');
  return name === 'localhost' || name === '[::1]' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
