/** Shared pieces of the benchmark: data generation, timed child processes, peak RSS. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const cli = join(repoRoot, 'bin', 'run.cjs');
const reporter = join(repoRoot, 'bench', 'rss-reporter.cjs');

const words = 'kernel module init systemd service network mount proc sys usr lib bin etc var tmp dev boot efi image payload chunk hash firmware'.split(' ');

/**
 * Writes `mib` MiB of mixed data: every third MiB random (incompressible),
 * the rest text-like (compresses ~5x), like a root filesystem image.
 */
export async function makeMixedFile(path: string, mib: number, seed = 1): Promise<void> {
  const fh = await open(path, 'w');
  let x = seed;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
  try {
    for (let i = 0; i < mib; i++) {
      let block: Buffer;
      if (i % 3 === 0) block = randomBytes(1 << 20);
      else {
        const parts: string[] = [];
        let n = 0;
        while (n < 1 << 20) {
          const w = words[Math.floor(rnd() * words.length)]! + (rnd() < 0.1 ? '\n' : ' ');
          parts.push(w);
          n += w.length;
        }
        block = Buffer.from(parts.join('')).subarray(0, 1 << 20);
      }
      await fh.write(block);
    }
  } finally {
    await fh.close();
  }
}

export interface Timed {
  seconds: number;
  /** Peak RSS in bytes, when the process reported it (our own CLI). */
  peakRss?: number;
  /**
   * CPU seconds (user + system), which on a shared machine vary less than wall
   * time: from /usr/bin/time with `cpu: true`, else from our own CLI's reporter.
   */
  cpuSeconds?: number;
  stdout: string;
}

/** Runs a command, returns wall time; with `node: true` runs our CLI under the RSS reporter. */
export async function timed(
  cmd: string,
  args: string[],
  opts: { node?: boolean; env?: NodeJS.ProcessEnv; shell?: boolean; prefix?: string[]; timeoutMs?: number; cpu?: boolean } = {},
): Promise<Timed> {
  const rssFile = join('/tmp', `oci-os-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  let argv = opts.node ? ['--require', reporter, cli, ...args] : args;
  let file = opts.node ? process.execPath : cmd;
  // A wrapper command (`ip netns exec NAME`) runs the measured one, under /usr/bin/time for its CPU time.
  const cpuFile = `${rssFile}.cpu`;
  const prefix = [...(opts.prefix ?? []), ...(opts.cpu ? ['/usr/bin/time', '-f', '%U %S', '-o', cpuFile] : [])];
  if (prefix.length) {
    argv = [...prefix.slice(1), file, ...argv];
    file = prefix[0]!;
  }
  const start = process.hrtime.bigint();
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn(file, argv, { env: { ...process.env, ...opts.env, OCI_OS_RSS_FILE: rssFile }, shell: opts.shell, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else
        reject(
          new Error(
            `${cmd} ${args.join(' ')} exited ${code ?? signal}${signal === 'SIGKILL' && opts.timeoutMs ? ` (time limit ${opts.timeoutMs} ms)` : ''}: ${err.slice(-2000)}`,
          ),
        );
    });
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  let cpuSeconds: number | undefined;
  if (opts.cpu) {
    const [user, sys] = (await readFile(cpuFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
    cpuSeconds = user! + sys!;
    await rm(cpuFile, { force: true });
  }
  let peakRss: number | undefined;
  if (opts.node) {
    const [rss, user, system] = (await readFile(rssFile, 'utf8')).split(' ').map(Number);
    peakRss = rss;
    cpuSeconds ??= ((user ?? 0) + (system ?? 0)) / 1e6;
    await rm(rssFile, { force: true });
  }
  return { seconds, peakRss, cpuSeconds, stdout };
}

export const mib = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
export const rate = (bytes: number, s: number) => `${(bytes / (1 << 20) / s).toFixed(0)} MiB/s`;
