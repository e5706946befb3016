/** Helpers for the CLI tests of pull, inspect, verify, extract, copy and serve. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson } from '../../src/oci/json.js';
import { cliPath, pseudoRandom, runCli } from '../helpers/cli.js';

export const KiB = 1024;
export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** What `oci-os build --json` reports. */
export interface BuiltImage {
  dir: string;
  location: string;
  digest: string;
  payloads: Array<{ name: string; size: number; digest: string; blobSize: number; mediaType: string; chunkCount: number }>;
  /** The payload bytes, by name. */
  data: Record<string, Buffer>;
}

/** Builds an OS image with the CLI into `oci:DIR:TAG` (payload `system` of `size` bytes, plus `kernel.efi`). */
export async function buildImage(
  root: string,
  opts: { size?: number; compression?: 'zstd' | 'none'; chunk?: string; tag?: string; seed?: number; frame?: string } = {},
): Promise<BuiltImage> {
  const sys = pseudoRandom(opts.size ?? 600 * KiB + 123, opts.seed ?? 1, true);
  const kernel = Buffer.from('MZ kernel image for tests\n'.repeat(100));
  await writeFile(join(root, 'system.img'), sys);
  await writeFile(join(root, 'kernel.efi'), kernel);
  const dir = join(root, 'img');
  const location = `oci:${dir}:${opts.tag ?? 'v1'}`;
  const args = [
    'build',
    '-p',
    `system=${join(root, 'system.img')}`,
    '-p',
    `kernel.efi=${join(root, 'kernel.efi')}`,
    '--compression',
    opts.compression ?? 'zstd',
    '--hash-chunk-size',
    opts.chunk ?? '64KiB',
    '--product-id',
    'testos',
    '--product-version',
    '1.0',
    '--variant',
    'x86_64',
    '-o',
    location,
    '--json',
  ];
  if (opts.frame) args.push('--frame-size', opts.frame);
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { digest: string; payloads: BuiltImage['payloads'] };
  return { dir, location, digest: out.digest, payloads: out.payloads, data: { system: sys, 'kernel.efi': kernel } };
}

/** Path of a blob in a layout. */
export function blobPath(dir: string, digest: string): string {
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/**
 * Edits an OS image's config and rewrites config, manifest and index.json
 * consistently (every digest valid), so only a chunk check can notice.
 */
export async function editConfig(dir: string, manifestDigest: string, edit: (config: any) => void): Promise<string> {
  const manifest = JSON.parse(await readFile(blobPath(dir, manifestDigest), 'utf8'));
  const config = JSON.parse(await readFile(blobPath(dir, manifest.config.digest), 'utf8'));
  edit(config);
  const cfg = canonicalJson(config);
  await writeFile(blobPath(dir, sha256(cfg)), cfg);
  manifest.config = { ...manifest.config, digest: sha256(cfg), size: cfg.length };
  const m = canonicalJson(manifest);
  await writeFile(blobPath(dir, sha256(m)), m);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  for (const d of index.manifests) if (d.digest === manifestDigest) Object.assign(d, { digest: sha256(m), size: m.length });
  await writeFile(join(dir, 'index.json'), canonicalJson(index));
  return sha256(m);
}

/** Runs the CLI keeping stdout as bytes. */
export function runCliBinary(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
  });
}
