import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort, sleep, TailBuffer } from './net.js';
import { makeCa, makeServerCert } from './tls.js';
import { startTokenServer, type TokenServerHandle } from './token-server.js';

/** A running CNCF distribution (`docker-registry`) made by {@link startDockerRegistry}. */
export interface RegistryHandle {
  /** `127.0.0.1:PORT`, the host part of image references. */
  host: string;
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (tls mode). */
  url: string;
  /** Storage root on disk (`storage.filesystem.rootdirectory`). */
  rootDir: string;
  /** PEM of the CA that signed the server certificate (tls mode). */
  caFile?: string;
  /** Directory holding `ca.crt` only, for `skopeo --dest-cert-dir` / `--src-cert-dir` (tls mode). */
  certDir?: string;
  /** Account accepted by the registry (htpasswd mode) or the token server (token mode). */
  username?: string;
  /** Password of {@link username}. Never print it. */
  password?: string;
  /** The token server the registry trusts (token mode). */
  tokenServer?: TokenServerHandle;
  /** Last `chars` characters (default 4000, at most 32 KiB) the registry process wrote (its log). */
  logTail(chars?: number): string;
  /** Kills the process for sure and removes the temp directories. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startDockerRegistry}. */
export interface DockerRegistryOptions {
  /** `none` (default), `htpasswd` (Basic, bcrypt file) or `token` (Bearer, with a {@link startTokenServer}). */
  auth?: 'none' | 'htpasswd' | 'token';
  /** Serve HTTPS with a certificate from a fresh test CA (see {@link RegistryHandle.caFile}). */
  tls?: boolean;
  /** Token lifetime in seconds (token mode). Default 300. */
  tokenExpiresIn?: number;
  /** Token mode: anonymous token requests get pull access instead of 401. */
  allowAnonymous?: boolean;
  /** Token mode: make `exp` exact despite the registry's 60 s leeway (see token-server). */
  exactTokenExpiry?: boolean;
  /** Milliseconds to wait for `GET /v2/` to answer. Default 10000. */
  readyTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last line of defence: a test that forgot stop() must not leave registries running.
  const killAll = (): void => {
    for (const p of live) p.kill('SIGKILL');
  };
  process.on('exit', killAll);
  // A test runner ends a timed-out file with a signal, which skips 'exit'.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) continue; // someone else owns it
    process.once(sig, () => {
      killAll();
      process.kill(process.pid, sig); // the listener is gone: default action now
    });
  }
}

function probe(url: string, ca: Buffer | undefined): Promise<number> {
  return new Promise((resolve) => {
    const u = new URL('/v2/', url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method: 'GET', agent: false, ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function yamlString(s: string): string {
  return JSON.stringify(s); // JSON strings are valid YAML double-quoted scalars
}

async function killHard(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/**
 * The configuration file of a `docker-registry serve`: filesystem storage
 * under `rootDir` with deletes enabled and upload purging off, listening on
 * `addr`, then `lines` (tls:, auth: sections) as given.
 */
export function dockerRegistryConfig(opts: { rootDir: string; addr: string; logLevel?: string; lines?: string[] }): string {
  return [
    'version: 0.1',
    'log:',
    `  level: ${opts.logLevel ?? 'info'}`,
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${yamlString(opts.rootDir)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${opts.addr}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    ...(opts.lines ?? []),
    '',
  ].join('\n');
}

/**
 * The environment of a `docker-registry` process: only what it needs.
 * distribution reads every REGISTRY_* variable as configuration, so a
 * user's REGISTRY_AUTH_FILE would change the server.
 */
export function dockerRegistryEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: process.env.TMPDIR ?? '/tmp' };
}

/**
 * Starts the real CNCF distribution registry (`docker-registry serve`) on a
 * free loopback port, with filesystem storage in a temp dir and deletes
 * enabled, and waits until `GET /v2/` answers 200 or 401. Call `stop()`
 * (e.g. in `t.after`) to end it.
 */
export async function startDockerRegistry(opts: DockerRegistryOptions = {}): Promise<RegistryHandle> {
  installExitHook();
  const auth = opts.auth ?? 'none';
  const dir = await mkdtemp(join(tmpdir(), 'oci-os-registry-'));
  const rootDir = join(dir, 'storage');
  await mkdir(rootDir);
  let tokenServer: TokenServerHandle | undefined;
  const cleanupDir = async (): Promise<void> => {
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    let caFile: string | undefined;
    let certDir: string | undefined;
    const tlsLines: string[] = [];
    if (opts.tls) {
      const ca = await makeCa(dir);
      const server = await makeServerCert(ca, dir, ['127.0.0.1', 'localhost']);
      caFile = ca.caCert;
      certDir = join(dir, 'certs.d');
      await mkdir(certDir);
      await writeFile(join(certDir, 'ca.crt'), await readFile(caFile));
      tlsLines.push('  tls:', `    certificate: ${yamlString(server.cert)}`, `    key: ${yamlString(server.key)}`);
    }
    let username: string | undefined;
    let password: string | undefined;
    const authLines: string[] = [];
    if (auth === 'htpasswd' || auth === 'token') {
      username = `user${randomBytes(4).toString('hex')}`;
      password = randomBytes(12).toString('base64url');
    }
    if (auth === 'htpasswd') {
      const file = join(dir, 'htpasswd');
      // Cost 4 keeps each request's bcrypt check cheap; the registry accepts any bcrypt cost.
      await writeFile(file, `${username}:${bcrypt.hashSync(password!, 4)}\n`, { mode: 0o600 });
      authLines.push('auth:', '  htpasswd:', '    realm: oci-os-test', `    path: ${yamlString(file)}`);
    } else if (auth === 'token') {
      tokenServer = await startTokenServer({
        users: { [username!]: password! },
        expiresIn: opts.tokenExpiresIn,
        allowAnonymous: opts.allowAnonymous,
        compensateRegistryLeeway: opts.exactTokenExpiry,
      });
      authLines.push(
        'auth:',
        '  token:',
        `    realm: ${yamlString(tokenServer.realm)}`,
        `    service: ${yamlString(tokenServer.service)}`,
        `    issuer: ${yamlString(tokenServer.issuer)}`,
        `    rootcertbundle: ${yamlString(tokenServer.certFile)}`,
      );
    }
    const ca = caFile ? await readFile(caFile) : undefined;
    const deadline = opts.readyTimeoutMs ?? 10_000;
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const url = `${opts.tls ? 'https' : 'http'}://${host}`;
      const config = dockerRegistryConfig({ rootDir, addr: host, lines: [...tlsLines, ...authLines] });
      const configFile = join(dir, 'config.yml');
      await writeFile(configFile, config, { mode: 0o600 });
      const out = new TailBuffer(32 * 1024);
      const proc = spawn('docker-registry', ['serve', configFile], { env: dockerRegistryEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      live.add(proc);
      proc.stdout!.on('data', (c: Buffer) => out.push(c));
      proc.stderr!.on('data', (c: Buffer) => out.push(c));
      let spawnError: Error | undefined;
      proc.once('error', (e) => {
        spawnError = e;
      });
      proc.once('exit', () => live.delete(proc));
      const started = Date.now();
      let status = 0;
      while (Date.now() - started < deadline) {
        if (spawnError || proc.exitCode !== null || proc.signalCode !== null) break;
        status = await probe(url, ca);
        if (status === 200 || status === 401) break;
        await sleep(50);
      }
      if (status === 200 || status === 401) {
        let stopped = false;
        return {
          host,
          url,
          rootDir,
          caFile,
          certDir,
          username,
          password,
          tokenServer,
          logTail: (chars = 4000) => out.tail(chars),
          async stop() {
            if (stopped) return;
            stopped = true;
            await killHard(proc);
            await cleanupDir();
          },
        };
      }
      await killHard(proc);
      lastError = spawnError ? spawnError.message : `GET ${url}/v2/ gave ${status || 'no answer'}; log tail:\n${out.tail(2000)}`;
      if (spawnError || !/address already in use/.test(out.tail())) break;
    }
    throw new Error(`docker-registry did not start: ${lastError}`);
  } catch (e) {
    await cleanupDir();
    throw e;
  }
}
