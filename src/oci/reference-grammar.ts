/**
 * The grammar of the parts of an image reference and of a registry API
 * path: repository names, tags and digests (distribution-spec, "Pulling
 * manifests"; image-spec, "Digests"). The client (registry/reference.ts)
 * and the built-in registry (server/routes.ts) both check names against
 * these, so that a name one accepts the other does too.
 */

/**
 * Repository name: one or more `/`-separated components, each lowercase
 * letters and digits separated by `.`, `_`, `__` or a run of `-`.
 */
export const repositoryNameRe = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/** Tag: 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`. */
export const tagRe = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Digest of any algorithm, `algorithm:encoded` (image-spec descriptor grammar); whether it can be checked is another question (oci/digest.ts). */
export const digestRe = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** A sha256 digest: 64 lowercase hex characters, the only digest oci-os writes and the built-in registry stores. */
export const sha256DigestRe = /^sha256:[a-f0-9]{64}$/;
