/**
 * `login` and `logout` as a library: the registry is asked first (`GET /v2/`
 * through the same auth flow every other request uses: Basic, or a Bearer
 * token fetched with the credentials — distribution-spec "API version
 * check", token auth spec), and only credentials it accepted are stored
 * (store.ts). Nothing here prints or logs a credential.
 */
import { OciError } from '../../errors.js';
import { looksLikeHost, redactUserinfo } from '../../secrets/redact.js';
import { RegistryHttp } from '../http.js';
import { parseReference } from '../reference.js';
import { type RetryOptions, RetryPolicy } from '../retry.js';
import type { TransportOptions } from '../transport.js';
import {
  type AuthStoreOptions,
  type EraseResult,
  eraseCredentials,
  type LoginCredentials,
  otherFilesWithEntry,
  type StoredLocation,
  storeCredentials,
} from './store.js';

/** A registry named on a login command line, normalized. */
export interface LoginTarget {
  /** As references name it: `docker.io`, `ghcr.io`, `localhost:5000`. */
  registry: string;
  /** Where its API is served: `registry-1.docker.io` for Docker Hub. */
  apiHost: string;
  /** True when the user wrote `http://`. */
  plainHttp?: boolean;
}

/**
 * Parses what users pass to `login`: `ghcr.io`, `localhost:5000`,
 * `https://index.docker.io/v1/`, `http://127.0.0.1:5000`. No value means
 * Docker Hub, as for docker.
 */
export function parseLoginTarget(input: string | undefined): LoginTarget {
  const raw = (input ?? 'docker.io').trim();
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(raw);
  const at = raw.lastIndexOf('@');
  if (at >= 0) {
    // A registry never holds "@": all before the last one is user-info, which may hold a password (even one with "/").
    throw new OciError(
      'USAGE',
      `"${redactUserinfo(raw, { always: true })}" holds credentials: give the registry as HOST[:PORT], the user with --username and the password on --password-stdin`,
    );
  }
  const scheme = m?.[1]?.toLowerCase();
  if (scheme && scheme !== 'http' && scheme !== 'https') {
    throw new OciError('USAGE', `"${raw}" is not a registry: use HOST[:PORT], e.g. ghcr.io or localhost:5000`);
  }
  // Not lower-cased here: parseReference below spells the host as every other reference.
  const host = (m ? m[2]! : raw).replace(/\/.*$/, '');
  if (host === '') throw new OciError('USAGE', `"${raw}" is not a registry: use HOST[:PORT], e.g. ghcr.io or localhost:5000`);
  // The reference parser knows host grammar and the Docker Hub aliases; a dummy repository makes it look at the host.
  if (!looksLikeHost(host)) throw new OciError('USAGE', `"${raw}" does not look like a registry host: use HOST[:PORT], e.g. ghcr.io or localhost:5000`);
  let ref;
  try {
    ref = parseReference(`${host}/x`);
  } catch {
    throw new OciError('USAGE', `"${raw}" is not a valid registry host[:port]`);
  }
  return { registry: ref.registry, apiHost: ref.apiHost, ...(scheme === 'http' ? { plainHttp: true } : {}) };
}

/** Options of {@link login}. */
export interface LoginOptions extends TransportOptions, AuthStoreOptions {
  retry?: RetryOptions;
}

/** What {@link login} did. */
export interface LoginResult extends StoredLocation {
  registry: string;
  /** False when the registry answered `GET /v2/` without asking for credentials (they were stored unchecked). */
  verified: boolean;
}

const checkHint = 'check the user name and the password or token (tokens need at least read access to the registry)';

/**
 * Checks credentials against the registry: resolves whether the registry
 * asked for them (true) or lets anyone in (false); throws AUTH_FAILED when
 * it refuses them.
 */
export async function verifyCredentials(target: LoginTarget, creds: LoginCredentials, options: LoginOptions = {}): Promise<boolean> {
  let challenged = false;
  const http = new RegistryHttp({
    ...options,
    plainHttp: options.plainHttp ?? target.plainHttp,
    host: target.apiHost,
    retry: new RetryPolicy(options.retry),
    credentials: async () => {
      challenged = true;
      return { username: creds.username, password: creds.password };
    },
  });
  try {
    let res;
    try {
      res = await http.send({ method: 'GET', url: '/v2/', scopes: [] });
    } catch (err) {
      if (err instanceof OciError && err.code === 'AUTH_FAILED') {
        throw new OciError('AUTH_FAILED', `${target.registry} rejected the credentials of "${creds.username}"; nothing was stored`, {
          hint: checkHint,
          cause: err,
        });
      }
      throw err;
    }
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => undefined);
      throw new OciError('AUTH_FAILED', `${target.registry} rejected the credentials of "${creds.username}" (${res.status}); nothing was stored`, {
        hint: checkHint,
      });
    }
    if (res.status !== 200) throw await http.error(res, 'GET', { message: `${target.registry} answered ${res.status} to GET /v2/; is it a registry?` });
    await res.body.dump().catch(() => undefined);
    return challenged;
  } finally {
    await http.close();
  }
}

/** Verifies credentials with the registry, then stores them where docker, podman and skopeo read them. */
export async function login(target: LoginTarget, creds: LoginCredentials, options: LoginOptions = {}): Promise<LoginResult> {
  if (creds.username === '') throw new OciError('USAGE', 'the user name is empty');
  if (creds.password === '') throw new OciError('USAGE', 'the password is empty');
  const verified = await verifyCredentials(target, creds, options);
  const stored = await storeCredentials(target.registry, creds, options);
  return { registry: target.registry, verified, ...stored };
}

/** What {@link logout} did. */
export interface LogoutResult extends EraseResult {
  registry: string;
  /** Other auth files oci-os reads that still hold credentials for the registry. */
  stillIn: string[];
}

/** Removes stored credentials for a registry from the auth file (and its credential helper). */
export async function logout(target: LoginTarget, options: AuthStoreOptions = {}): Promise<LogoutResult> {
  const r = await eraseCredentials(target.registry, options);
  const stillIn = await otherFilesWithEntry(target.registry, options.env);
  return { registry: target.registry, ...r, stillIn };
}
