/**
 * Writing credentials where docker, podman and skopeo read them (the
 * counterpart of credentials.ts, which reads): the auth file
 * (`REGISTRY_AUTH_FILE` when set, as podman and skopeo do, else
 * `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), `auths[KEY].auth`
 * = base64(`user:pass`) under the key docker uses (`https://index.docker.io/v1/`
 * for Docker Hub, `host[:port]` otherwise), or a credential helper named by
 * `credHelpers[KEY]` / `credsStore` (docker-credential-helpers protocol:
 * `store` with `{"ServerURL","Username","Secret"}` on stdin, `erase` with the
 * server URL on stdin). Files are replaced atomically (writeFileAtomic: temp
 * file, fsync, rename, directory fsync) with mode 0600; entries and fields
 * oci-os does not know are kept.
 */
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsError, OciError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { authConfigView, authFilePaths, configKeysFor, helperHasNothing, keyHost, spawnCredentialHelper } from './credentials.js';

/** A user name and password (or token) to store. Never printed. */
export interface LoginCredentials {
  username: string;
  password: string;
}

/** Options of the auth-file functions. */
export interface AuthStoreOptions {
  /** Environment for `REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`, `HOME` and the helpers' `PATH`. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Kill a credential helper after this many ms. Default 30000. */
  helperTimeoutMs?: number;
  /** Told about auth-file entries of the wrong shape, which are ignored (see authConfigView). Default: `process.emitWarning`. */
  onWarning?: (message: string) => void;
}

/** Where a login went. */
export interface StoredLocation {
  /** The auth file that was read (and, without a helper, written). */
  file: string;
  /** The key in `auths` / the helper's server URL. */
  key: string;
  /** The credential helper that holds the secret (`docker-credential-NAME`), when one does. */
  helper?: string;
}

/** What a logout removed. */
export interface EraseResult extends StoredLocation {
  /** Whether there were credentials to remove. */
  removed: boolean;
}

/** The auth file a login writes: `REGISTRY_AUTH_FILE`, else the Docker config. */
export function authFileForWriting(env: NodeJS.ProcessEnv = process.env): string {
  return authFilePaths(env)[0]!;
}

/** The `auths` key (and helper server URL) docker and skopeo use for a registry. */
export function authKeyFor(registry: string): string {
  return configKeysFor(registry)[0]!;
}

type Json = Record<string, unknown>;

async function readJsonObject(path: string): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(err, path, 'read');
  }
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new OciError('INPUT_UNREADABLE', `cannot parse the auth file ${path}: it is not JSON`, {
      hint: 'fix or remove the file; oci-os does not overwrite a file it cannot read',
    });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new OciError('INPUT_UNREADABLE', `the auth file ${path} is not a JSON object`);
  return v as Json;
}

/**
 * Replaces `path` by `content` atomically, mode 0600 (symlinks are followed,
 * as docker does); a directory made for it is private (0700).
 */
async function replaceAuthFile(path: string, content: string): Promise<void> {
  let target = path;
  try {
    target = await realpath(path);
  } catch {
    // does not exist yet
  }
  const dir = dirname(target);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(err, dir, 'write');
  }
  try {
    await writeFileAtomic(target, content, { mode: 0o600 });
  } catch (err) {
    throw fsError(err, target, 'write');
  }
}

function serialize(cfg: Json): string {
  return JSON.stringify(cfg, null, '\t') + '\n';
}

function stringMap(cfg: Json, field: string): Record<string, string> {
  const m = cfg[field];
  return m && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, string>) : {};
}

/**
 * The helper the config names for a registry: `credHelpers` (by any key of
 * the host) first, then `credsStore`; names of the wrong type are ignored
 * with a warning, as when reading.
 */
function helperFor(cfg: Json, file: string, registry: string, options: AuthStoreOptions): string | undefined {
  const warn = options.onWarning ?? ((m: string) => process.emitWarning(m, { code: 'OCI_OS_AUTH_FILE' }));
  const view = authConfigView({ credHelpers: cfg.credHelpers, credsStore: cfg.credsStore }, file, registry, warn);
  return view.helper?.[1] ?? view.credsStore;
}

/** Keys of `auths` that name the same registry (every spelling docker and skopeo use). */
function aliasKeys(auths: Record<string, unknown>, registry: string): string[] {
  const want = new Set(configKeysFor(registry).map(keyHost));
  return Object.keys(auths).filter((k) => want.has(keyHost(k)));
}

/**
 * Runs `docker-credential-NAME ACTION` with `input` on stdin. Resolves with
 * whether it succeeded; "credentials not found" (erase) resolves false.
 * Messages never include what the helper printed, which may hold secrets.
 */
export async function runCredentialHelperAction(name: string, action: 'store' | 'erase', input: string, options: AuthStoreOptions = {}): Promise<boolean> {
  const a = await spawnCredentialHelper(name, action, input, { env: options.env, timeoutMs: options.helperTimeoutMs });
  if (a.code === 0) return true;
  if (action === 'erase' && helperHasNothing(a)) return false;
  throw new OciError('AUTH_FAILED', `credential helper docker-credential-${name} failed to ${action} credentials (exit status ${a.code})`);
}

/**
 * Stores credentials for `registry` (`docker.io`, `ghcr.io`,
 * `localhost:5000`): through the credential helper the auth file names, or
 * as `auths[KEY].auth`. Other entries and fields of the file are kept; other
 * spellings of the same registry's key are replaced by the one docker uses.
 */
export async function storeCredentials(registry: string, creds: LoginCredentials, options: AuthStoreOptions = {}): Promise<StoredLocation> {
  if (creds.username.includes(':')) throw new OciError('USAGE', 'a user name cannot contain ":" (it separates user and password in the auth file)');
  const env = options.env ?? process.env;
  const file = authFileForWriting(env);
  const key = authKeyFor(registry);
  const cfg = (await readJsonObject(file)) ?? {};
  const helper = helperFor(cfg, file, registry, options);
  const auths = { ...stringMap(cfg, 'auths') } as Record<string, unknown>;
  for (const k of aliasKeys(auths, registry)) delete auths[k];
  if (helper) {
    await runCredentialHelperAction(helper, 'store', JSON.stringify({ ServerURL: key, Username: creds.username, Secret: creds.password }), options);
    // Docker keeps an empty entry so the registry is listed; the secret is the helper's.
    auths[key] = {};
  } else {
    auths[key] = { auth: Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64') };
  }
  cfg.auths = auths;
  await replaceAuthFile(file, serialize(cfg));
  return { file, key, ...(helper ? { helper: `docker-credential-${helper}` } : {}) };
}

/**
 * Removes the credentials for `registry` from the auth file a login writes
 * (every spelling of its key) and from the credential helper it names.
 * The file is only rewritten when something changed.
 */
export async function eraseCredentials(registry: string, options: AuthStoreOptions = {}): Promise<EraseResult> {
  const env = options.env ?? process.env;
  const file = authFileForWriting(env);
  const key = authKeyFor(registry);
  const cfg = await readJsonObject(file);
  if (!cfg) return { file, key, removed: false };
  const helper = helperFor(cfg, file, registry, options);
  let removed = false;
  if (helper) removed = await runCredentialHelperAction(helper, 'erase', key, options);
  const auths = { ...stringMap(cfg, 'auths') } as Record<string, unknown>;
  const aliases = aliasKeys(auths, registry);
  if (aliases.length > 0) {
    for (const k of aliases) {
      const e = auths[k];
      if (e && typeof e === 'object' && Object.keys(e).length > 0) removed = true;
      delete auths[k];
    }
    cfg.auths = auths;
    await replaceAuthFile(file, serialize(cfg));
  }
  return { file, key, removed, ...(helper ? { helper: `docker-credential-${helper}` } : {}) };
}

/** Auth files oci-os reads, other than the one a login writes, that still hold an entry for `registry`. */
export async function otherFilesWithEntry(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const out: string[] = [];
  for (const path of authFilePaths(env).slice(1)) {
    if (path === authFileForWriting(env)) continue;
    const cfg = await readJsonObject(path).catch(() => undefined);
    if (!cfg) continue;
    if (
      aliasKeys(stringMap(cfg, 'auths'), registry).length > 0 ||
      Object.keys(stringMap(cfg, 'credHelpers')).some((k) => configKeysFor(registry).map(keyHost).includes(keyHost(k)))
    ) {
      out.push(path);
    }
  }
  return out;
}
