/**
 * Manifest, tag-list and referrers endpoints (distribution-spec "Pushing
 * manifests", "Pulling manifests", "Content discovery", "Deleting manifests").
 * Manifests are stored byte for byte as sent; their references are checked
 * against the repository before anything is stored.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { digestRe, tagRe } from '../oci/reference-grammar.js';
import { contentLength, type Exchange, type RegistryContext, reply } from './context.js';
import { httpError, RegistryHttpError } from './errors.js';
import { checkDigest, isDigestReference } from './routes.js';
import type { ManifestRecord } from './storage.js';

/** Manifest media types the registry accepts (OCI image-spec 1.1 and Docker schema 2). */
export const acceptedManifestTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;
const imageTypes: string[] = [acceptedManifestTypes.ociManifest, acceptedManifestTypes.dockerManifest];
const indexTypes: string[] = [acceptedManifestTypes.ociIndex, acceptedManifestTypes.dockerManifestList];

interface DescriptorLike {
  mediaType: string;
  digest: string;
  size: number;
  urls?: unknown;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: unknown): RegistryHttpError {
  return httpError(400, 'MANIFEST_INVALID', message, detail);
}

/** Reads a request body of at most `max` bytes (413 SIZE_INVALID beyond). */
async function readCapped(req: IncomingMessage, max: number): Promise<Buffer> {
  const announced = contentLength(req);
  if (announced !== undefined && announced > max) {
    throw httpError(413, 'SIZE_INVALID', `manifest of ${announced} bytes exceeds the limit of ${max}`, { limit: max });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  // Not destroyed when refused midway, so the 413 still reaches the client.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) {
      req.resume();
      throw httpError(413, 'SIZE_INVALID', `manifest exceeds the limit of ${max} bytes`, { limit: max });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Deepest nesting of objects and arrays a manifest may have. Real manifests
 * nest four or five levels; much deeper JSON only serves to exhaust the
 * stack of whatever walks it later.
 */
export const maxManifestDepth = 64;

/**
 * Throws 400 MANIFEST_INVALID when the JSON text nests objects and arrays
 * deeper than {@link maxManifestDepth}. A single pass over the bytes,
 * skipping strings, before anything parses them.
 */
function checkDepth(bytes: Uint8Array): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next byte is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxManifestDepth) throw invalid(`manifest nests deeper than ${maxManifestDepth} levels`, { limit: maxManifestDepth });
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}

function checkDescriptor(d: unknown, where: string): DescriptorLike {
  const o = d as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw invalid(`${where}: not a descriptor`);
  if (typeof o.mediaType !== 'string') throw invalid(`${where}: mediaType missing`);
  if (typeof o.digest !== 'string' || !digestRe.test(o.digest)) throw invalid(`${where}: invalid digest`, { digest: o.digest });
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) throw invalid(`${where}: invalid size`);
  return o as unknown as DescriptorLike;
}

/**
 * The digest of a `subject` descriptor. Referrers are filed and listed by
 * this digest, so it must use an algorithm the registry supports: anything
 * else could never be asked for, or would be confused with a digest of
 * another algorithm.
 */
function checkSubject(d: unknown): string {
  const { digest } = checkDescriptor(d, 'subject');
  try {
    return checkDigest(digest);
  } catch (err) {
    if (err instanceof RegistryHttpError) throw invalid(`subject: ${err.message}`, { digest });
    throw err;
  }
}

function mediaTypeOf(req: IncomingMessage, body: Record<string, unknown>): string {
  const header = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const headerIsManifest = header !== '' && header !== 'application/octet-stream' && header !== 'application/json';
  if (headerIsManifest && declared !== undefined && declared !== header) {
    throw invalid(`Content-Type ${header} differs from the manifest's mediaType ${declared}`);
  }
  const mt = headerIsManifest ? header : (declared ?? (Array.isArray(body.manifests) ? acceptedManifestTypes.ociIndex : acceptedManifestTypes.ociManifest));
  if (!imageTypes.includes(mt) && !indexTypes.includes(mt)) {
    throw invalid(`unsupported manifest media type ${mt}`, { mediaType: mt });
  }
  return mt;
}

/** Validates a manifest and checks that what it references is in the repository. */
async function validate(ctx: RegistryContext, name: string, mediaType: string, body: Record<string, unknown>): Promise<ManifestRecord> {
  if (body.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  const record: Omit<ManifestRecord, 'digest' | 'size'> = { mediaType };
  if (imageTypes.includes(mediaType)) {
    const config = checkDescriptor(body.config, 'config');
    if (!Array.isArray(body.layers)) throw invalid('layers must be an array');
    const layers = body.layers.map((l, i) => checkDescriptor(l, `layers[${i}]`));
    for (const d of [config, ...layers]) {
      if (Array.isArray(d.urls) && d.urls.length > 0) continue;
      const size = d.digest.startsWith('sha256:') ? await ctx.storage.repoBlobSize(name, d.digest) : undefined;
      if (size === undefined) throw httpError(400, 'MANIFEST_BLOB_UNKNOWN', `blob ${d.digest} is not in ${name}`, { digest: d.digest });
      if (size !== d.size) throw invalid(`blob ${d.digest} has ${size} bytes, the manifest says ${d.size}`, { digest: d.digest });
    }
    record.artifactType = typeof body.artifactType === 'string' ? body.artifactType : config.mediaType;
  } else {
    if (!Array.isArray(body.manifests)) throw invalid('manifests must be an array');
    const children = body.manifests.map((m, i) => checkDescriptor(m, `manifests[${i}]`));
    for (const d of children) {
      const known = d.digest.startsWith('sha256:') ? await ctx.storage.getManifest(name, d.digest) : undefined;
      if (!known) throw httpError(400, 'MANIFEST_BLOB_UNKNOWN', `manifest ${d.digest} is not in ${name}`, { digest: d.digest });
    }
    if (typeof body.artifactType === 'string') record.artifactType = body.artifactType;
  }
  if (body.subject !== undefined) record.subject = checkSubject(body.subject);
  if (body.annotations && typeof body.annotations === 'object') record.annotations = body.annotations as Record<string, string>;
  return record as ManifestRecord;
}

/** `PUT /v2/<name>/manifests/<reference>[?tag=...]`. */
export async function putManifest(ctx: RegistryContext, ex: Exchange, name: string, reference: string): Promise<void> {
  if (!isDigestReference(reference) && !tagRe.test(reference)) throw invalid(`invalid tag "${reference}"`, { tag: reference });
  const bytes = await readCapped(ex.req, ctx.maxManifestBytes);
  checkDepth(bytes);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('manifest is not a JSON object');
  const mediaType = mediaTypeOf(ex.req, body);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const tags: string[] = [];
  if (isDigestReference(reference)) {
    if (reference !== digest) {
      throw httpError(400, 'DIGEST_INVALID', `manifest has digest ${digest}, not ${reference}`, { expected: reference, actual: digest });
    }
    for (const t of ex.url.searchParams.getAll('tag')) {
      if (!tagRe.test(t)) throw invalid(`invalid tag "${t}"`, { tag: t });
      tags.push(t);
    }
  } else {
    tags.push(reference);
  }
  const record = { ...(await validate(ctx, name, mediaType, body)), digest, size: bytes.length };
  const store = () => ctx.storage.putManifest(name, bytes, record, tags);
  const condition = writeCondition(ex.req);
  if (condition && !isDigestReference(reference)) await ctx.storage.withTag(name, reference, condition, store);
  else await store();
  const headers: Record<string, string | string[]> = {
    Location: `/v2/${name}/manifests/${digest}`,
    'Docker-Content-Digest': digest,
  };
  if (record.subject) headers['OCI-Subject'] = record.subject;
  if (isDigestReference(reference) && tags.length > 0) headers['OCI-Tag'] = tags;
  reply(ex.res, 201, headers);
}

/**
 * The precondition of a tag write (RFC 9110 13.1): `If-Match` with the ETag
 * a GET gave (the quoted digest, or `*` for "any"), `If-None-Match: *` for
 * "only if the tag is new". Lets clients that merge into a tag (an index of
 * several architectures) detect a concurrent writer instead of losing it.
 */
function writeCondition(req: IncomingMessage): ((current: string | undefined) => void) | undefined {
  const ifMatch = req.headers['if-match'];
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  const tags = (v: string | undefined) =>
    (v ?? '')
      .split(',')
      .map((t) => t.trim().replace(/^W\//, ''))
      .filter(Boolean);
  return (current) => {
    const etag = current === undefined ? undefined : `"${current}"`;
    const matches = (list: string[]) => etag !== undefined && (list.includes('*') || list.includes(etag));
    if (ifMatch !== undefined && !matches(tags(ifMatch))) {
      throw httpError(412, 'DENIED', `the tag now holds ${current ?? 'nothing'}, not what If-Match names`, { current: current ?? null });
    }
    if (ifNoneMatch !== undefined && (matches(tags(ifNoneMatch)) || (etag !== undefined && tags(ifNoneMatch).includes('*')))) {
      throw httpError(412, 'DENIED', `the tag already holds ${current}`, { current: current ?? null });
    }
  };
}

async function resolve(ctx: RegistryContext, name: string, reference: string): Promise<ManifestRecord> {
  // A reference that is no valid tag names no manifest: the registry does not have it.
  if (!isDigestReference(reference) && !tagRe.test(reference)) {
    throw httpError(404, 'MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`, { reference });
  }
  const digest = isDigestReference(reference) ? reference : await ctx.storage.resolveTag(name, reference);
  const record = digest === undefined ? undefined : await ctx.storage.getManifest(name, digest);
  if (!record) throw httpError(404, 'MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`, { reference });
  return record;
}

/** `GET`/`HEAD /v2/<name>/manifests/<reference>`: the bytes as pushed, with their media type. */
export async function getManifest(ctx: RegistryContext, ex: Exchange, name: string, reference: string): Promise<void> {
  const record = await resolve(ctx, name, reference);
  const headers = {
    'Content-Type': record.mediaType,
    'Docker-Content-Digest': record.digest,
    ETag: `"${record.digest}"`,
    'Content-Length': record.size,
  };
  if (ex.req.method === 'HEAD') {
    reply(ex.res, 200, headers);
    return;
  }
  const chunks: Buffer[] = [];
  for await (const c of ctx.storage.openBlob(record.digest) as AsyncIterable<Buffer>) chunks.push(c);
  reply(ex.res, 200, headers, Buffer.concat(chunks));
}

/** `DELETE /v2/<name>/manifests/<reference>`: by digest removes the manifest and its tags; by tag removes the tag. */
export async function deleteManifest(ctx: RegistryContext, ex: Exchange, name: string, reference: string): Promise<void> {
  const found = isDigestReference(reference)
    ? await ctx.storage.deleteManifest(name, reference)
    : tagRe.test(reference) && (await ctx.storage.deleteTag(name, reference));
  if (!found) throw httpError(404, 'MANIFEST_UNKNOWN', `manifest ${reference} is not in ${name}`, { reference });
  reply(ex.res, 202, {});
}

/** `GET /v2/<name>/tags/list[?n=&last=]`, lexically ordered, with a `Link` to the next page. */
export async function listTags(ctx: RegistryContext, ex: Exchange, name: string): Promise<void> {
  const all = await ctx.storage.listTags(name);
  if (all === undefined) throw httpError(404, 'NAME_UNKNOWN', `repository ${name} is not known`, { name });
  const q = ex.url.searchParams;
  const last = q.get('last');
  const nParam = q.get('n');
  const n = nParam !== null && /^\d+$/.test(nParam) ? Number(nParam) : undefined;
  let tags = last === null ? all : all.filter((t) => t > last);
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (n !== undefined && tags.length > n) {
    tags = tags.slice(0, n);
    if (n > 0) {
      const next = new URLSearchParams({ n: String(n), last: tags[tags.length - 1]! });
      headers.Link = `</v2/${name}/tags/list?${next.toString()}>; rel="next"`;
    }
  }
  reply(ex.res, 200, headers, JSON.stringify({ name, tags }));
}

/** `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an image index of the manifests whose subject is `digest`. */
export async function listReferrers(ctx: RegistryContext, ex: Exchange, name: string, digest: string): Promise<void> {
  const filter = ex.url.searchParams.get('artifactType');
  let records = await ctx.storage.listReferrers(name, digest);
  const headers: Record<string, string> = { 'Content-Type': acceptedManifestTypes.ociIndex };
  if (filter !== null) {
    records = records.filter((r) => r.artifactType === filter);
    headers['OCI-Filters-Applied'] = 'artifactType';
  }
  const manifests = records.map((r) => {
    const d: DescriptorLike = { mediaType: r.mediaType, digest: r.digest, size: r.size };
    if (r.artifactType !== undefined) d.artifactType = r.artifactType;
    if (r.annotations !== undefined) d.annotations = r.annotations;
    return d;
  });
  const index = { schemaVersion: 2, mediaType: acceptedManifestTypes.ociIndex, manifests };
  reply(ex.res, 200, headers, JSON.stringify(index));
}
