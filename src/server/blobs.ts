/**
 * Blob endpoints (distribution-spec "Pulling blobs", "Pushing blobs",
 * "Mounting a blob", "Deleting blobs"): HEAD/GET with single ranges, DELETE,
 * and every upload flavour: monolithic POST, POST+PUT, chunked PATCH,
 * streamed PATCH, status GET, cancel and cross-repository mount.
 */
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { contentLength, type Exchange, type RegistryContext, reply } from './context.js';
import { httpError, RegistryHttpError } from './errors.js';
import { checkDigest, checkName } from './routes.js';
import { progressHeaders } from './uploads.js';

/** `GET`/`HEAD /v2/<name>/blobs/<digest>`, honouring one `Range: bytes=` range. */
export async function getBlob(ctx: RegistryContext, ex: Exchange, name: string, digest: string): Promise<void> {
  const size = await ctx.storage.repoBlobSize(name, digest);
  if (size === undefined) throw httpError(404, 'BLOB_UNKNOWN', undefined, { digest });
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
  };
  const range = parseRange(ex.req.headers.range, size);
  if (range === 'unsatisfiable') {
    // The spec's error table has no code for a range; SIZE_INVALID says the request does not fit the blob's size.
    throw httpError(416, 'SIZE_INVALID', `range not satisfiable for a blob of ${size} bytes`, { size }, { 'Content-Range': `bytes */${size}` });
  }
  const { res } = ex;
  if (range) {
    res.statusCode = 206;
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
    headers['Content-Length'] = range.end - range.start + 1;
  } else {
    res.statusCode = 200;
    headers['Content-Length'] = size;
  }
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (ex.req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  try {
    await pipeline(ctx.storage.openBlob(digest, range ?? undefined), res);
  } catch {
    // The file could not be read, or the client went away: either way the
    // response cannot be completed, and pipeline has closed both ends.
    res.destroy();
  }
}

/**
 * Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range. Returns null
 * when there is no usable single range (the whole blob is served), or
 * 'unsatisfiable' when the range lies outside the blob.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/** `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository. */
export async function deleteBlob(ctx: RegistryContext, ex: Exchange, name: string, digest: string): Promise<void> {
  if (!(await ctx.storage.unlinkBlob(name, digest))) throw httpError(404, 'BLOB_UNKNOWN', undefined, { digest });
  reply(ex.res, 202, { 'Docker-Content-Digest': digest });
}

/** `POST /v2/<name>/blobs/uploads/`, with `?digest=` (monolithic), `?mount=&from=` or neither. */
export async function startUpload(ctx: RegistryContext, ex: Exchange, name: string): Promise<void> {
  const q = ex.url.searchParams;
  const mount = q.get('mount');
  const from = q.get('from');
  if (mount !== null && from !== null) {
    const digest = checkDigest(mount);
    checkName(from);
    if ((await ctx.storage.repoBlobSize(from, digest)) !== undefined) {
      await ctx.storage.linkBlob(name, digest);
      reply(ex.res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
      return;
    }
  }
  const digestParam = mount === null ? q.get('digest') : null;
  const digest = digestParam === null ? undefined : checkDigest(digestParam);
  const session = await ctx.uploads.create(name);
  if (digest !== undefined) {
    await ctx.uploads.locked(session, async () => {
      try {
        await ctx.uploads.append(session, ex.req, { length: contentLength(ex.req) });
        await ctx.uploads.finish(session, digest);
      } catch (err) {
        await ctx.uploads.cancel(session);
        // The session is gone: its Location and Range would point nowhere.
        if (err instanceof RegistryHttpError && err.status === 507) throw httpError(err.status, err.code, err.message, err.detail);
        throw err;
      }
    });
    reply(ex.res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
    return;
  }
  ex.req.resume();
  const headers: Record<string, string> = { ...progressHeaders(session) };
  if (ctx.limits.chunkMinLength) headers['OCI-Chunk-Min-Length'] = String(ctx.limits.chunkMinLength);
  reply(ex.res, 202, headers);
}

/** Parses a request `Content-Range: <start>-<end>` (inclusive, no unit, as the spec writes it). */
function parseContentRange(req: IncomingMessage): { start: number; length: number } | undefined {
  const h = req.headers['content-range'];
  if (h === undefined) return undefined;
  const m = /^(\d+)-(\d+)$/.exec(h.trim());
  if (!m || Number(m[2]) < Number(m[1])) {
    throw httpError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range "${h}": expected <start>-<end>`, { contentRange: h });
  }
  return { start: Number(m[1]), length: Number(m[2]) - Number(m[1]) + 1 };
}

/** Announced length of a body: the Content-Range span, checked against Content-Length. */
function announcedLength(req: IncomingMessage, range: { length: number } | undefined): number | undefined {
  const cl = contentLength(req);
  if (range && cl !== undefined && cl !== range.length) {
    throw httpError(400, 'SIZE_INVALID', `Content-Length ${cl} does not match the Content-Range span of ${range.length}`);
  }
  return range?.length ?? cl;
}

/** `PATCH /v2/<name>/blobs/uploads/<id>`: a chunk (with Content-Range) or a stream (without). */
export async function patchUpload(ctx: RegistryContext, ex: Exchange, name: string, id: string): Promise<void> {
  const session = await ctx.uploads.get(name, id);
  const range = parseContentRange(ex.req);
  const length = announcedLength(ex.req, range);
  await ctx.uploads.exclusive(session, ex.req, async () => {
    const min = ctx.limits.chunkMinLength;
    if (min && session.shortChunkSeen) {
      throw httpError(400, 'SIZE_INVALID', `only the last chunk may be shorter than ${min} bytes`, { minLength: min }, progressHeaders(session));
    }
    const received = await ctx.uploads.append(session, ex.req, {
      start: range?.start,
      length,
      maxLength: ctx.limits.chunkMaxLength,
    });
    if (min && received < min) session.shortChunkSeen = true;
  });
  reply(ex.res, 202, progressHeaders(session));
}

/** `GET /v2/<name>/blobs/uploads/<id>`: 204 with the received range (a request still streaming into the session is cut off first). */
export async function uploadStatus(ctx: RegistryContext, ex: Exchange, name: string, id: string): Promise<void> {
  const session = await ctx.uploads.get(name, id);
  await ctx.uploads.exclusive(session, ex.req, async () => undefined);
  reply(ex.res, 204, progressHeaders(session));
}

/** `PUT /v2/<name>/blobs/uploads/<id>?digest=`: optional last chunk, then verify and store. */
export async function putUpload(ctx: RegistryContext, ex: Exchange, name: string, id: string): Promise<void> {
  const session = await ctx.uploads.get(name, id);
  const digestParam = ex.url.searchParams.get('digest');
  if (digestParam === null) throw httpError(400, 'DIGEST_INVALID', 'the digest query parameter is required');
  const digest = checkDigest(digestParam);
  const range = parseContentRange(ex.req);
  const length = announcedLength(ex.req, range);
  await ctx.uploads.exclusive(session, ex.req, async () => {
    await ctx.uploads.append(session, ex.req, { start: range?.start, length });
    await ctx.uploads.finish(session, digest);
  });
  reply(ex.res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

/** `DELETE /v2/<name>/blobs/uploads/<id>`: cancels the session. */
export async function cancelUpload(ctx: RegistryContext, ex: Exchange, name: string, id: string): Promise<void> {
  const session = await ctx.uploads.get(name, id);
  await ctx.uploads.exclusive(session, ex.req, () => ctx.uploads.cancel(session));
  reply(ex.res, 204, {});
}
