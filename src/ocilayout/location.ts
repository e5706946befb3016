/**
 * Local locations: `oci:DIR[:TAG|@DIGEST]` (an OCI image layout directory) and
 * `oci-archive:FILE[:TAG|@DIGEST]` (the same layout as a tar file), named as
 * skopeo and the containers tools name them.
 */
import { OciError } from '../errors.js';
import { checkedAlgorithms } from '../oci/digest.js';

export interface LocalLocation {
  kind: 'oci' | 'oci-archive';
  path: string;
  /** Tag (`org.opencontainers.image.ref.name`); undefined when not given. */
  tag?: string;
  /** Digest, when the location names one instead of a tag. */
  digest?: string;
}

/**
 * `org.opencontainers.image.ref.name` (image-spec annotations.md):
 * components of letters and digits joined by `-`, `.`, `_`, `:`, `@`, `+`
 * or `--`, separated by `/`; containers/image validates the same grammar.
 */
const refComponent = '[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*';
const refNameRe = new RegExp(`^${refComponent}(?:/${refComponent})*$`);
/** `@ALG` ending the part before the first colon, ALG one whose content is checked: that colon is the digest's (`DIR@sha256:HEX`). */
const digestAtRe = new RegExp(`@(${Object.keys(checkedAlgorithms).join('|')})$`);

/** True when `s` starts with a local transport prefix. */
export function isLocalLocation(s: string): boolean {
  return s.startsWith('oci:') || s.startsWith('oci-archive:');
}

/**
 * Parses a local location; throws INVALID_REFERENCE with what to write instead.
 * As in containers/image (skopeo, podman, buildah), the path ends at the
 * first colon and the rest is the tag, any ref.name (`oci:DIR:foo/bar`):
 * a path that contains a colon cannot be named. `DIR@sha256:HEX` names a
 * manifest by digest.
 */
export function parseLocalLocation(s: string): LocalLocation {
  const m = /^(oci|oci-archive):(.*)$/s.exec(s);
  if (!m) {
    throw new OciError('INVALID_REFERENCE', `invalid location "${s}": use oci:DIR[:TAG] or oci-archive:FILE[:TAG]`);
  }
  const kind = m[1] as LocalLocation['kind'];
  const [what, form] = kind === 'oci' ? (['directory', 'oci:DIR'] as const) : (['file', 'oci-archive:FILE'] as const);
  const colon = m[2]!.indexOf(':');
  let path = colon < 0 ? m[2]! : m[2]!.slice(0, colon);
  const rest = colon < 0 ? undefined : m[2]!.slice(colon + 1);
  let tag: string | undefined;
  let digest: string | undefined;
  const alg = rest === undefined ? null : digestAtRe.exec(path);
  if (alg) {
    digest = `${alg[1]}:${rest}`;
    path = path.slice(0, alg.index);
    if (!new RegExp(`^[a-f0-9]{${checkedAlgorithms[alg[1]!]}}$`).test(rest!)) {
      throw new OciError(
        'INVALID_REFERENCE',
        `invalid digest "${digest}" in "${s}": expected ${alg[1]}:<${checkedAlgorithms[alg[1]!]} lowercase hex characters>`,
      );
    }
  } else if (rest !== undefined) {
    if (/@sha(?:256|384|512):/.test(rest)) {
      throw new OciError('INVALID_REFERENCE', `invalid location "${s}": name the image by tag or by digest, not both (${form}:TAG or ${form}@DIGEST)`);
    }
    if (rest === '') {
      throw new OciError('INVALID_REFERENCE', `invalid location "${s}": the tag after ':' is empty (${form}[:TAG])`);
    }
    if (!refNameRe.test(rest)) {
      throw new OciError(
        'INVALID_REFERENCE',
        `invalid tag "${rest}" in "${s}": the ${what} ends at the first ':', and a tag is letters and digits joined by one of - . _ : @ + or --, in parts separated by /`,
      );
    }
    tag = rest;
  }
  if (path === '') {
    throw new OciError('INVALID_REFERENCE', `invalid location "${s}": the ${what} is missing (${form}[:TAG])`);
  }
  return { kind, path, tag, digest };
}

/** Formats a location back to its string form. */
export function formatLocalLocation(l: LocalLocation): string {
  return `${l.kind}:${l.path}${l.digest ? `@${l.digest}` : l.tag ? `:${l.tag}` : ''}`;
}
