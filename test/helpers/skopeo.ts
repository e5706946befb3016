import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TailBuffer } from './net.js';

/** Options of {@link skopeo}. */
export interface SkopeoOptions {
  /**
   * HOME for the run (kept after it). Default: a fresh temp dir removed
   * afterwards, so no auth file or blob cache leaks between runs. (Running
   * as root, containers/image keeps its blob-info cache in
   * /var/lib/containers/cache whatever HOME is; registries on fresh ports
   * make its entries useless, so it cannot turn a push into a mount.)
   */
  home?: string;
  /** Kill skopeo after this many milliseconds. Default 120000. */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

const GLOBAL_POLICY_FLAGS = ['--insecure-policy', '--policy'];

/**
 * Runs `skopeo ARGS` with an isolated HOME (and auth file, temp dir and
 * signature policy inside it). Adds the global `--policy` flag with an
 * accept-anything policy unless `args` already holds a policy flag. TLS and
 * credential flags are the caller's. Resolves with the output; rejects with
 * an error that holds the exit status and stderr tail on failure.
 */
export async function skopeo(args: string[], opts: SkopeoOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const home = opts.home ?? (await mkdtemp(join(tmpdir(), 'oci-os-skopeo-')));
  try {
    const runDir = join(home, 'run');
    const tmp = join(home, 'tmp');
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    await mkdir(tmp, { recursive: true });
    const global: string[] = ['--tmpdir', tmp];
    if (!args.some((a) => GLOBAL_POLICY_FLAGS.some((f) => a === f || a.startsWith(`${f}=`)))) {
      const policy = join(home, 'policy.json');
      await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
      global.push('--policy', policy);
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_RUNTIME_DIR: runDir,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      REGISTRY_AUTH_FILE: join(runDir, 'auth.json'),
      ...opts.env,
    };
    return await new Promise((resolve, reject) => {
      const p = spawn('skopeo', [...global, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let outBytes = 0;
      const err = new TailBuffer(64 * 1024);
      p.stdout.on('data', (c: Buffer) => {
        outBytes += c.length;
        if (outBytes <= 64 * 1024 * 1024) out.push(c);
      });
      p.stderr.on('data', (c: Buffer) => err.push(c));
      const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      p.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      p.on('close', (code, signal) => {
        clearTimeout(timer);
        const stdout = Buffer.concat(out).toString('utf8');
        const stderr = err.tail();
        if (code === 0) resolve({ stdout, stderr });
        else {
          const e = new Error(`skopeo ${args[0] ?? ''} exited with ${code ?? signal}: ${stderr.trim().slice(-2000)}`);
          Object.assign(e, { stdout, stderr, exitCode: code });
          reject(e);
        }
      });
    });
  } finally {
    if (!opts.home) await rm(home, { recursive: true, force: true });
  }
}
