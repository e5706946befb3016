import { createCipheriv, createHash } from 'node:crypto';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { type RegistryHandle, startDockerRegistry } from '../helpers/docker-registry.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';

export const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (AES-CTR keystream), generated on the fly, never stored. */
export async function* randomBytesStream(size: number, seed = 1, piece = 256 * 1024): AsyncGenerator<Buffer> {
  const key = createHash('sha256').update(`seed-${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(piece);
  for (let off = 0; off < size; off += piece) {
    const n = Math.min(piece, size - off);
    yield cipher.update(n === piece ? zeros : zeros.subarray(0, n));
  }
}

/** Digest of {@link randomBytesStream}(size, seed). */
export async function randomDigest(size: number, seed = 1): Promise<string> {
  const h = createHash('sha256');
  for await (const b of randomBytesStream(size, seed)) h.update(b);
  return `sha256:${h.digest('hex')}`;
}

/** GETs a blob straight from a registry without auth and returns its sha256 and size. */
export async function blobFromRegistry(url: string, repo: string, digest: string): Promise<{ digest: string; size: number }> {
  const res = await request(`${url}/v2/${repo}/blobs/${digest}`);
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`GET blob ${digest}: ${res.statusCode}`);
  }
  const h = createHash('sha256');
  let size = 0;
  for await (const c of res.body) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/** A client whose retries never wait; `sleeps` records the delays it was asked for. */
export function fastClient(opts: RegistryClientOptions = {}): { client: RegistryClient; sleeps: number[] } {
  const sleeps: number[] = [];
  const client = new RegistryClient({
    explicitCredentialsOnly: true,
    ...opts,
    retry: {
      retries: 5,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      ...(opts.retry as object | undefined),
    },
  });
  return { client, sleeps };
}

/** The CNCF registry with a fault-injecting proxy in front, both stopped after the test. */
export async function registryBehindProxy(t: TestContext): Promise<{ reg: RegistryHandle; proxy: FaultProxy }> {
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  return { reg, proxy };
}
