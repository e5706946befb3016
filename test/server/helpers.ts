import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { type RegistryServerOptions, type RunningRegistry, startRegistryServer } from '../../src/server/index.js';

/** sha256 digest of bytes. */
export function sha(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A registry on 127.0.0.1:0 over a fresh temp root; `stop()` closes it and removes the root. */
export async function tempRegistry(opts: Partial<RegistryServerOptions> = {}): Promise<RunningRegistry & { root: string; stop(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'oci-os-registry-'));
  const reg = await startRegistryServer({ root, host: '127.0.0.1', port: 0, ...opts });
  return {
    ...reg,
    root,
    stop: async () => {
      await reg.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Response with the body read as text and parsed JSON when possible. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  bytes: Buffer;
  json: any;
  header(name: string): string | undefined;
}

/** One request to the registry (path relative to its URL, or an absolute URL). */
export async function call(
  reg: { url: string },
  method: string,
  path: string,
  opts: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const url = new URL(path, reg.url);
  const r = await request(url, { method: method as 'GET', body: opts.body, headers: opts.headers });
  const bytes = Buffer.from(await r.body.arrayBuffer());
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return {
    status: r.statusCode,
    headers: r.headers,
    text,
    bytes,
    json,
    header: (name) => {
      const v = r.headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(', ') : v;
    },
  };
}

/** The first error code of a spec error body. */
export function errorCode(a: Answer): string | undefined {
  return a.json?.errors?.[0]?.code;
}

/** Pushes a blob monolithically (POST ?digest=) and returns its digest. */
export async function pushBlob(reg: { url: string }, name: string, data: Buffer | string): Promise<string> {
  const digest = sha(data);
  const a = await call(reg, 'POST', `/v2/${name}/blobs/uploads/?digest=${digest}`, {
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (a.status !== 201) throw new Error(`push ${digest}: ${a.status} ${a.text}`);
  return digest;
}

/** Pushes an OCI image manifest (config + layers already pushed) and returns its bytes and digest. */
export async function pushManifest(
  reg: { url: string },
  name: string,
  reference: string | undefined,
  manifest: object,
  mediaType = 'application/vnd.oci.image.manifest.v1+json',
): Promise<{ digest: string; bytes: Buffer; answer: Answer }> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha(bytes);
  const answer = await call(reg, 'PUT', `/v2/${name}/manifests/${reference ?? digest}`, {
    body: bytes,
    headers: { 'content-type': mediaType },
  });
  return { digest, bytes, answer };
}

/** An OCI image manifest over pushed blobs. */
export function imageManifest(
  config: { digest: string; size: number; mediaType?: string },
  layers: Array<{ digest: string; size: number }>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: config.mediaType ?? 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
    ...extra,
  };
}
