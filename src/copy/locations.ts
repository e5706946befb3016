/**
 * Locations: the one place where a user's string becomes a store.
 *
 * - a registry reference `[HOST[:PORT]/]REPO[:TAG][@DIGEST]` (registry/reference.ts),
 * - `oci:DIR[:TAG|@DIGEST]`, an OCI image layout directory,
 * - `oci-archive:FILE[:TAG|@DIGEST]`, the same layout as a tar file
 *   (layout/location.ts; as in skopeo, DIR or FILE ends at the first colon).
 *
 * Reading resolves the manifest or index the location names (the root of a
 * copy). Writing returns a store on which nothing is visible before
 * `commit()` for local locations; registry writes go straight to the
 * repository, and the tag (a manifest PUT by tag) is the caller's last step.
 */
import { readFile, stat } from 'node:fs/promises';
import type { ContentStore } from '../content/store.js';
import { InterruptedError, isOciError, OciError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { isIndexMediaType, isManifestMediaType } from '../oci/mediatypes.js';
import { OciLayout } from '../ocilayout/layout.js';
import { formatLocalLocation, isLocalLocation, type LocalLocation, parseLocalLocation } from '../ocilayout/location.js';
import { openLocalForWriting } from '../ocilayout/open.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';
import { formatReference, manifestReference, parseReference, type Reference } from '../registry/reference.js';
import { maxManifestBytes, type RegistryRepository } from '../registry/repository.js';
import { redactUrl, redactUserinfo } from '../secrets/redact.js';

/** Which kind of place a location names. */
export type LocationKind = 'registry' | 'oci' | 'oci-archive';

/** A parsed location string. */
export interface ParsedLocation {
  kind: LocationKind;
  /** The string as given. */
  input: string;
  /** Set for `oci:` and `oci-archive:`. */
  local?: LocalLocation;
  /** Set for registry references. */
  reference?: Reference;
  /** Tag named by the location, if any. */
  tag?: string;
  /** Digest named by the location, if any. */
  digest?: string;
}

/** Options for opening locations. Zero values mean the defaults. */
export interface LocationOptions {
  /** Registry client to use (shared by source and destination); one is made from {@link registry} otherwise and closed by close(). */
  client?: RegistryClient;
  /** Options of the client made when {@link client} is not given. */
  registry?: RegistryClientOptions;
  /**
   * Stops opening (an oci-archive being unpacked) with ABORTED, its temporary
   * files removed; for a registry, also cancels the repository's requests.
   */
  signal?: AbortSignal;
}

/** An opened location. */
export interface OpenedLocation {
  kind: LocationKind;
  /** Normalized form of the location (registry references with their host, local ones as written). */
  location: string;
  /** Tag named by the location (for writing: the tag that will be set; `latest` when none was given and no digest). */
  tag?: string;
  /** Digest named by the location, if any. */
  digest?: string;
  /** Parsed registry reference (registry locations). */
  reference?: Reference;
  /** Directory or file (local locations). */
  path?: string;
  store: ContentStore;
  /** The repository (registry locations), for mounts and per-blob results. */
  repository?: RegistryRepository;
  /** Releases connections and temporary files. Safe to call twice. */
  close(): Promise<void>;
}

/** A location opened for reading, with the manifest or index it names. */
export interface ReadableLocation extends OpenedLocation {
  /** Descriptor of the resolved manifest or index (mediaType, digest, size). */
  root: Descriptor;
}

/** A location opened for writing. */
export interface WritableLocation extends OpenedLocation {
  /** Local locations: makes everything written visible (index.json, archive file). Registries: no-op. */
  commit(): Promise<void>;
  /** Local locations: drops whatever was written. Registries: no-op (unreferenced blobs are the registry's to collect). */
  abort(): Promise<void>;
}

/**
 * Runs `write` on a destination just opened, then settles it: committed
 * when `write` succeeds, aborted when anything fails (a local destination
 * then shows nothing of it), closed either way. With `interrupted`, a
 * failure after its signal fired is reported as that interruption,
 * whichever step noticed it.
 */
export async function writeAndSettle<T>(out: WritableLocation, write: () => Promise<T>, interrupted?: { signal?: AbortSignal; message: string }): Promise<T> {
  try {
    const result = await write();
    await out.commit();
    return result;
  } catch (err) {
    await out.abort();
    if (interrupted?.signal?.aborted) throw new InterruptedError(interrupted.message, { cause: err });
    throw err;
  } finally {
    await out.close();
  }
}

/** True when `s` names a local location (`oci:` or `oci-archive:`). */
export { isLocalLocation };

/** Parses any location string; throws INVALID_REFERENCE with what to write instead. */
export function parseLocation(input: string): ParsedLocation {
  if (isLocalLocation(input)) {
    const local = parseLocalLocation(input);
    return { kind: local.kind, input, local, tag: local.tag, digest: local.digest };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    // A pasted URL can carry a password or a signed query: neither is echoed.
    const shown = /[?#]/.test(input) ? redactUrl(input) : redactUserinfo(input);
    throw new OciError(
      'INVALID_REFERENCE',
      `invalid location "${shown}": write a registry reference without a scheme (HOST/REPO:TAG), oci:DIR[:TAG] or oci-archive:FILE[:TAG]`,
    );
  }
  const reference = parseReference(input);
  return { kind: 'registry', input, reference, tag: reference.tag, digest: reference.digest };
}

/** The normalized string form of a parsed location. */
export function formatLocation(p: ParsedLocation): string {
  return p.reference ? formatReference(p.reference) : formatLocalLocation(p.local!);
}

function clientFor(options: LocationOptions): { client: RegistryClient; owned: boolean } {
  if (options.client) return { client: options.client, owned: false };
  return { client: new RegistryClient(options.registry), owned: true };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

/** Only the fields a root descriptor needs, so layout annotations do not travel. */
function rootDescriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * Opens a location for reading and resolves the manifest or index it
 * names: the digest when given, else the tag, else `latest` for registries
 * and the only image for layouts.
 */
export async function openLocationForReading(input: string, options: LocationOptions = {}): Promise<ReadableLocation> {
  const p = parseLocation(input);
  if (p.kind === 'registry') {
    const ref = p.reference!;
    const { client, owned } = clientFor(options);
    const close = once(async () => {
      if (owned) await client.close();
    });
    try {
      const repository = client.repository(ref, { signal: options.signal });
      // resolve holds a digest in the reference to the registry's answer. What is read is read
      // from the root down, so the root manifest is fetched (and kept) as it is resolved.
      const root = await repository.resolve(manifestReference(ref), { read: true });
      return {
        kind: 'registry',
        location: formatReference(ref),
        tag: ref.tag,
        digest: ref.digest,
        reference: ref,
        store: repository,
        repository,
        root: rootDescriptor(root),
        close,
      };
    } catch (err) {
      await close();
      throw err;
    }
  }
  const loc = p.local!;
  // A source that is not there is NOT_FOUND (exit 4): OciLayout.open and openArchiveForReading say so.
  let layout: OciLayout;
  let close: () => Promise<void>;
  if (loc.kind === 'oci') {
    layout = await OciLayout.open(loc.path);
    close = once(async () => undefined);
  } else {
    const { openArchiveForReading } = await import('../ocilayout/archive.js');
    const opened = await openArchiveForReading(loc.path, { signal: options.signal });
    layout = opened.layout;
    close = once(opened.close);
  }
  try {
    const root = loc.digest ? await resolveLayoutDigest(layout, loc.digest) : await layout.resolve(loc.tag);
    return {
      kind: loc.kind,
      location: formatLocalLocation(loc),
      tag: loc.tag,
      digest: loc.digest,
      path: loc.path,
      store: layout,
      root: rootDescriptor(root),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * A digest in a layout: listed in index.json, or any manifest stored there
 * (e.g. one platform's manifest inside an index), its media type read from
 * the manifest itself.
 */
async function resolveLayoutDigest(layout: OciLayout, digest: string): Promise<Descriptor> {
  try {
    return await layout.resolve(digest);
  } catch (err) {
    if (!isOciError(err, 'NOT_FOUND')) throw err;
    let bytes: Buffer;
    try {
      // Only manifests qualify: never read a large blob to find out.
      if ((await stat(layout.blobPath(digest))).size > maxManifestBytes) throw err;
      bytes = await readFile(layout.blobPath(digest));
    } catch {
      throw err;
    }
    let mediaType: unknown;
    try {
      mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    } catch {
      throw err;
    }
    if (typeof mediaType !== 'string' || !(isManifestMediaType(mediaType) || isIndexMediaType(mediaType))) throw err;
    return { mediaType, digest, size: bytes.length };
  }
}

/**
 * Opens a location for writing. Local locations need a tag (default
 * `latest`; a digest-only local destination is refused because a layout
 * finds images by tag). Registry locations without tag or digest get
 * `latest`; with only a digest, the manifest is pushed by digest alone.
 */
export async function openLocationForWriting(input: string, options: LocationOptions = {}): Promise<WritableLocation> {
  const p = parseLocation(input);
  if (p.kind === 'registry') {
    const ref = p.reference!;
    const { client, owned } = clientFor(options);
    const repository = client.repository(ref, { signal: options.signal });
    const tag = ref.tag ?? (ref.digest ? undefined : 'latest');
    return {
      kind: 'registry',
      location: formatReference({ ...ref, tag }),
      tag,
      digest: ref.digest,
      reference: { ...ref, tag },
      store: repository,
      repository,
      commit: async () => undefined,
      abort: async () => undefined,
      close: once(async () => {
        if (owned) await client.close();
      }),
    };
  }
  const loc = p.local!;
  if (loc.digest) {
    throw new OciError('INVALID_REFERENCE', `${input}: a layout destination is named by tag (${loc.kind}:${loc.path}:TAG), not by digest`);
  }
  const tag = loc.tag ?? 'latest';
  const store = await openLocalForWriting(loc);
  let finished = false;
  return {
    kind: loc.kind,
    location: formatLocalLocation({ ...loc, tag }),
    tag,
    path: loc.path,
    store,
    commit: async () => {
      await store.commit();
      finished = true;
    },
    abort: async () => {
      finished = true;
      await store.abort();
    },
    close: once(async () => {
      if (!finished) await store.abort();
    }),
  };
}
