/**
 * Local locations: `oci:DIR[:TAG|@DIGEST]` (an OCI image layout directory) and
 * `oci-archive:FILE[:TAG|@DIGEST]` (the same layout as a tar file), named as
 * skopeo and the containers tools name them.
 */
import { OciError } from '../errors.js';

export interface LocalLocation {
  kind: 'oci' | 'oci-archive';
  path: string;
  /** Tag (`org.opencontainers.image.ref.name`); undefined when not given. */
  tag?: string;
  /** Digest, when the location names one instead of a tag. */
  digest?: string;
}

const tagRe = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const digestRe = /^sha256:[a-f0-9]{64}$/;

/** True when `s` starts with a local transport prefix. */
export function isLocalLocation(s: string): boolean {
  return s.startsWith('oci:') || s.startsWith('oci-archive:');
}

/** Parses a local location; throws INVALID_REFERENCE with what to write instead. */
export function parseLocalLocation(s: string): LocalLocation {
  const m = /^(oci|oci-archive):(.*)$/s.exec(s);
  if (!m) {
    throw new OciError('INVALID_REFERENCE', `invalid location "${s}": use oci:DIR[:TAG] or oci-archive:FILE[:TAG]`);
  }
  const kind = m[1] as LocalLocation['kind'];
  let path = m[2]!;
  let tag: string | undefined;
  let digest: string | undefined;
  const at = path.lastIndexOf('@');
  if (at >= 0 && digestRe.test(path.slice(at + 1))) {
    digest = path.slice(at + 1);
    path = path.slice(0, at);
  } else {
    const colon = path.lastIndexOf(':');
    if (colon >= 0) {
      const suffix = path.slice(colon + 1);
      if (!suffix.includes('/')) {
        if (!tagRe.test(suffix)) {
          throw new OciError('INVALID_REFERENCE', `invalid tag "${suffix}" in "${s}": tags are 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'`);
        }
        tag = suffix;
        path = path.slice(0, colon);
      }
    }
  }
  if (path === '') {
    throw new OciError('INVALID_REFERENCE', `invalid location "${s}": the ${kind === 'oci' ? 'directory' : 'file'} is missing (${kind}:${kind === 'oci' ? 'DIR' : 'FILE'}[:TAG])`);
  }
  return { kind, path, tag, digest };
}

/** Formats a location back to its string form. */
export function formatLocalLocation(l: LocalLocation): string {
  return `${l.kind}:${l.path}${l.digest ? `@${l.digest}` : l.tag ? `:${l.tag}` : ''}`;
}
