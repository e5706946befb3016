/**
 * Where credentials for a registry come from, in order: explicit options,
 * `OCI_OS_USERNAME`/`OCI_OS_PASSWORD` (both only for the one registry they
 * are bound to, see {@link CredentialOptions.credentialsHost}), then the container auth files
 * (`REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json` or
 * `~/.docker/config.json`): `credHelpers`, `auths` (`auth` base64 or
 * `username`/`password`, `identitytoken`, `registrytoken`), `credsStore`.
 * Docker's config-file format and credential-helper protocol
 * (`docker-credential-NAME get`, server URL on stdin, JSON on stdout).
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OciError } from '../../errors.js';
import { normalizeRegistry } from '../reference.js';

/** Credentials for one registry. Never printed. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token realm. */
  identityToken?: string;
  /** A bearer token sent as is (`registrytoken`). */
  registryToken?: string;
}

/** Options of {@link resolveCredentials}. */
export interface CredentialOptions {
  /** Explicit credentials; win over everything else, for {@link credentialsHost} only. */
  credentials?: Credentials;
  /**
   * The one registry (as references name it: `ghcr.io`, `localhost:5000`)
   * that {@link credentials} and `OCI_OS_USERNAME`/`OCI_OS_PASSWORD` belong
   * to. Any other registry gets only what the auth files hold for it, so a
   * password given for one registry never reaches another. `false`: they
   * belong to none. Default: the registry asked about.
   */
  credentialsHost?: string | false;
  /** Environment to read variables from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Don't look at environment variables or auth files. */
  explicitOnly?: boolean;
  /** Kill a credential helper after this many ms. Default 30000. */
  helperTimeoutMs?: number;
}

/** The keys a config file may use for a registry, most specific first. */
export function configKeysFor(registry: string): string[] {
  if (registry === 'docker.io' || registry === 'registry-1.docker.io' || registry === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io', 'https://registry-1.docker.io'];
  }
  return [registry, `https://${registry}`, `http://${registry}`];
}

/** True when `registry` is the one explicit credentials are bound to (see {@link CredentialOptions.credentialsHost}). */
function isCredentialsHost(registry: string, credentialsHost: string | false | undefined): boolean {
  if (credentialsHost === undefined) return true;
  return credentialsHost !== false && normalizeRegistry(credentialsHost) === normalizeRegistry(registry);
}

/**
 * Reduces a config key (`https://host/v1/`, `host`, `http://host:5000`) to
 * its host[:port], lower-cased: references spell hosts in lower case, but
 * auth files other tools wrote may not.
 */
export function keyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Auth files to read, in order of precedence. */
export function authFilePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  files.push(join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json'));
  return files;
}

async function readConfig(path: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as ConfigFile;
  } catch {
    throw new OciError('INPUT_UNREADABLE', `cannot parse the auth file ${path}: it is not JSON`);
  }
}

function findEntry<T>(map: Record<string, T> | undefined, registry: string): [string, T] | undefined {
  if (!map) return undefined;
  for (const k of configKeysFor(registry)) if (map[k] !== undefined) return [k, map[k]!];
  const want = keyHost(configKeysFor(registry)[0]!);
  for (const [k, v] of Object.entries(map)) if (keyHost(k) === want) return [k, v];
  return undefined;
}

function fromAuthEntry(e: AuthEntry): Credentials | undefined {
  const c: Credentials = {};
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      c.username = decoded.slice(0, i);
      c.password = decoded.slice(i + 1);
    }
  }
  if (e.username && e.password !== undefined) {
    c.username = e.username;
    c.password = e.password;
  }
  if (e.identitytoken) c.identityToken = e.identitytoken;
  if (e.registrytoken) c.registryToken = e.registrytoken;
  return Object.keys(c).length > 0 ? c : undefined;
}

/** What a `docker-credential-*` program answered. Its output may hold secrets: never put it in a message. */
export interface CredentialHelperAnswer {
  code: number | null;
  /** Standard output, trimmed. */
  stdout: string;
  /** Standard error (first 4 KiB), to recognise "credentials not found". */
  stderr: string;
}

/**
 * Runs `docker-credential-NAME ACTION` (the docker-credential-helpers
 * protocol: `get`, `store`, `erase`) with `input` on stdin. Rejects with
 * AUTH_FAILED when the program cannot be run; exit codes are the caller's.
 */
export function spawnCredentialHelper(
  name: string,
  action: 'get' | 'store' | 'erase',
  input: string,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CredentialHelperAnswer> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 4096) stderr += c.toString(); });
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new OciError('AUTH_FAILED', `credential helper ${program} could not be run: ${err.code === 'ENOENT' ? 'not found on PATH' : err.message}`, {
        hint: 'install it, or remove it from the credHelpers/credsStore of your auth file',
      }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8').trim(), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** True when a helper's answer says it holds nothing for that server. */
export function helperHasNothing(a: CredentialHelperAnswer): boolean {
  return /credentials not found/i.test(a.stdout + a.stderr);
}

/**
 * Runs `docker-credential-NAME get` with the server URL on stdin. Resolves
 * undefined when the helper has nothing for that server; throws AUTH_FAILED
 * when it is missing or fails otherwise (the message never holds its output).
 */
export async function runCredentialHelper(name: string, serverUrl: string, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  const a = await spawnCredentialHelper(name, 'get', serverUrl, options);
  if (a.code !== 0) {
    if (helperHasNothing(a)) return undefined;
    throw new OciError('AUTH_FAILED', `credential helper ${program} failed with exit status ${a.code} for ${serverUrl}`);
  }
  let j: { Username?: string; Secret?: string };
  try {
    j = JSON.parse(a.stdout) as { Username?: string; Secret?: string };
  } catch {
    throw new OciError('AUTH_FAILED', `credential helper ${program} printed something that is not JSON`);
  }
  if (!j.Secret) return undefined;
  return j.Username === '<token>' ? { identityToken: j.Secret } : { username: j.Username ?? '', password: j.Secret };
}

/** Looks a registry up in the auth files (see module comment). */
export async function readAuthFileCredentials(registry: string, options: CredentialOptions = {}): Promise<Credentials | undefined> {
  const env = options.env ?? process.env;
  for (const path of authFilePaths(env)) {
    const cfg = await readConfig(path);
    if (!cfg) continue;
    const helper = findEntry(cfg.credHelpers, registry);
    if (helper) return runCredentialHelper(helper[1], helper[0], { env, timeoutMs: options.helperTimeoutMs });
    const entry = findEntry(cfg.auths, registry);
    const creds = entry ? fromAuthEntry(entry[1]) : undefined;
    if (creds) return creds;
    if (cfg.credsStore) {
      const key = entry?.[0] ?? configKeysFor(registry)[0]!;
      const stored = await runCredentialHelper(cfg.credsStore, key, { env, timeoutMs: options.helperTimeoutMs });
      if (stored) return stored;
    }
  }
  return undefined;
}

/**
 * Credentials for `registry` (as written in references, e.g. `docker.io`,
 * `localhost:5000`), or undefined for anonymous access.
 */
export async function resolveCredentials(registry: string, options: CredentialOptions = {}): Promise<Credentials | undefined> {
  const bound = isCredentialsHost(registry, options.credentialsHost);
  if (bound && options.credentials && Object.values(options.credentials).some((v) => v !== undefined && v !== '')) {
    return options.credentials;
  }
  if (options.explicitOnly) return undefined;
  const env = options.env ?? process.env;
  // Set but empty (a CI secret that did not resolve) means "not given", not an empty account.
  if (bound && env.OCI_OS_USERNAME && env.OCI_OS_PASSWORD) {
    return { username: env.OCI_OS_USERNAME, password: env.OCI_OS_PASSWORD };
  }
  return readAuthFileCredentials(registry, options);
}
