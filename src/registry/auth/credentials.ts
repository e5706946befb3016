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
  /**
   * Told, in one line naming the file and the registry (never a value),
   * about an auth-file entry of the wrong shape, which is then treated as
   * absent. Default: `process.emitWarning`.
   */
  onWarning?: (message: string) => void;
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
  return key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** An auth file as JSON gave it: any field may be of any type (see {@link authConfigView}). */
type ConfigFile = Record<string, unknown>;

/** Names of `docker-credential-*` programs: a name, never a path. */
const helperNameRe = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** What a JSON value is, for a warning that must not show it. */
function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * The parts of an auth file that concern one registry, with every part of
 * the wrong shape (an entry that is null or not an object, an `auth` or
 * `password` that is not a string, a helper name that is not a string or
 * not a name) dropped as if absent, each with one warning that names the
 * file, the registry and what is wrong, never a value. Docker fails on such
 * files; a lookup that crashed on them would fail every command, even ones
 * the entry does not matter to.
 */
export function authConfigView(
  cfg: unknown,
  path: string,
  registry: string,
  warn: (message: string) => void,
): {
  helper?: [string, string];
  entry?: [string, AuthEntry];
  credsStore?: string;
} {
  const where = `auth file ${path}`;
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) {
    warn(`${where} is ${jsonKind(cfg)}, not a JSON object; ignored for ${registry}`);
    return {};
  }
  const file = cfg as ConfigFile;
  const map = (field: string): Record<string, unknown> | undefined => {
    const m = file[field];
    if (m === undefined) return undefined;
    if (m && typeof m === 'object' && !Array.isArray(m)) return m as Record<string, unknown>;
    warn(`${where}: "${field}" is ${jsonKind(m)}, not an object; ignored for ${registry}`);
    return undefined;
  };
  const out: ReturnType<typeof authConfigView> = {};
  const helper = findEntry(map('credHelpers'), registry);
  if (helper) {
    if (typeof helper[1] === 'string' && helperNameRe.test(helper[1])) out.helper = [helper[0], helper[1]];
    else warn(`${where}: credHelpers["${helper[0]}"] for ${registry} is ${typeof helper[1] === 'string' ? 'not a helper name' : jsonKind(helper[1])}; ignored`);
  }
  const entry = findEntry(map('auths'), registry);
  if (entry) {
    const [key, e] = entry;
    if (!e || typeof e !== 'object' || Array.isArray(e)) {
      warn(`${where}: auths["${key}"] for ${registry} is ${jsonKind(e)}, not an object; ignored`);
    } else {
      const clean: AuthEntry = {};
      for (const f of ['auth', 'username', 'password', 'identitytoken', 'registrytoken'] as const) {
        const v = (e as Record<string, unknown>)[f];
        if (v === undefined) continue;
        if (typeof v === 'string') clean[f] = v;
        else warn(`${where}: auths["${key}"].${f} for ${registry} is ${jsonKind(v)}, not a string; ignored`);
      }
      out.entry = [key, clean];
    }
  }
  const store = file.credsStore;
  if (store !== undefined && store !== '') {
    if (typeof store === 'string' && helperNameRe.test(store)) out.credsStore = store;
    else warn(`${where}: "credsStore" is ${typeof store === 'string' ? 'not a helper name' : jsonKind(store)}; ignored for ${registry}`);
  }
  return out;
}

/** Auth files to read, in order of precedence. */
export function authFilePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  files.push(join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json'));
  return files;
}

async function readConfig(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new OciError('INPUT_UNREADABLE', `cannot parse the auth file ${path}: it is not JSON`);
  }
}

function findEntry<T>(map: Record<string, T> | undefined, registry: string): [string, T] | undefined {
  // Own keys only: "__proto__" or "constructor" in a file are no registries.
  if (!map) return undefined;
  for (const k of configKeysFor(registry)) if (Object.hasOwn(map, k) && map[k] !== undefined) return [k, map[k]!];
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
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString();
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new OciError('AUTH_FAILED', `credential helper ${program} could not be run: ${err.code === 'ENOENT' ? 'not found on PATH' : err.message}`, {
          hint: 'install it, or remove it from the credHelpers/credsStore of your auth file',
        }),
      );
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
export async function runCredentialHelper(
  name: string,
  serverUrl: string,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Credentials | undefined> {
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
  const warn = options.onWarning ?? ((m: string) => process.emitWarning(m, { code: 'OCI_OS_AUTH_FILE' }));
  for (const path of authFilePaths(env)) {
    const raw = await readConfig(path);
    if (raw === undefined) continue;
    const cfg = authConfigView(raw, path, registry, warn);
    if (cfg.helper) return runCredentialHelper(cfg.helper[1], cfg.helper[0], { env, timeoutMs: options.helperTimeoutMs });
    const creds = cfg.entry ? fromAuthEntry(cfg.entry[1]) : undefined;
    if (creds) return creds;
    if (cfg.credsStore) {
      const key = cfg.entry?.[0] ?? configKeysFor(registry)[0]!;
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
