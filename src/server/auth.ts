/**
 * HTTP Basic authentication against an htpasswd file holding bcrypt hashes
 * (`user:$2y$...`, as `htpasswd -B` writes). Other hash kinds are ignored, as
 * CNCF distribution refuses them. Credentials are never logged; successful
 * checks are remembered for a few minutes (keyed by an HMAC of the
 * credentials, never the password itself) so that bcrypt's cost is paid once
 * per user and password, not on every request.
 *
 * bcrypt is what an attacker can make expensive, so it runs on worker
 * threads (a burst of guesses never stalls the thread serving requests),
 * an unknown user costs as much as a wrong password (otherwise the answer
 * time tells which users exist), and guessing is throttled before any
 * bcrypt work: an address or a user name with too many failed (or still
 * running) checks in the last minute is answered 429 at once, and so is
 * every check while too many wait for a worker. A client whose credentials
 * were verified is answered from the cache without any of that.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { fsError, OciError } from '../errors.js';
import { BcryptPool } from './bcrypt-pool.js';
import { httpError, type RegistryHttpError } from './errors.js';

/** The challenge sent with every 401. */
export const basicChallenge = 'Basic realm="oci-os"';

/** How long a successful verification is remembered. */
const verifiedTtlMs = 5 * 60 * 1000;
/** Most remembered verifications; the oldest goes first. */
const maxVerified = 1000;
/** Failed (or running) checks of one address, or of one user name, within `failureWindowMs` before further checks are refused. */
const failureThreshold = 10;
const failureWindowMs = 60 * 1000;
/** Checks waiting for a worker beyond which new ones are refused at once. */
const maxQueuedVerifications = 64;
/** Most addresses and user names whose failures are tracked. */
const maxTrackedKeys = 10_000;

/**
 * Parses htpasswd text into user → bcrypt hash; lines with other hash kinds
 * are skipped, their user names (or line numbers, when there is no name)
 * listed in `skipped` when given.
 */
export function parseHtpasswd(text: string, skipped?: string[]): Map<string, string> {
  const users = new Map<string, string>();
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    const hash = line.slice(i + 1);
    // A malformed hash would be rejected without the bcrypt work, telling that the user exists.
    if (i > 0 && /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) users.set(line.slice(0, i), hash);
    else skipped?.push(i > 0 ? line.slice(0, i) : `line ${n + 1}`);
  }
  return users;
}

/**
 * A hash of the most common cost among `users` that no password matches:
 * comparing against it takes as long as checking a real user's password.
 * Only the salt part matters for the timing, so no hashing is needed here.
 */
function dummyHash(users: Map<string, string>): string {
  const counts = new Map<number, number>();
  for (const hash of users.values()) {
    const cost = bcrypt.getRounds(hash);
    counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  let cost = 10;
  let best = 0;
  for (const [c, n] of counts) {
    if (n > best) [cost, best] = [c, n];
  }
  return bcrypt.genSaltSync(cost) + '.'.repeat(31);
}

/** Failure counts per key (an address or a user name) in a fixed window, with the checks still running. */
class FailureThrottle {
  private readonly entries = new Map<string, { since: number; failures: number; running: number }>();

  /** Milliseconds until any of `keys` may be checked again; 0 when all may be now. */
  blockedFor(keys: string[], now = Date.now()): number {
    let wait = 0;
    for (const key of keys) {
      const e = this.entry(key, now, false);
      if (e && e.failures + e.running >= failureThreshold) wait = Math.max(wait, e.since + failureWindowMs - now, 1);
    }
    return wait;
  }

  /** Counts a check starting for each key; `settle` it with the outcome. */
  start(keys: string[]): (failed: boolean) => void {
    const now = Date.now();
    const entries = keys.map((k) => this.entry(k, now, true)!);
    for (const e of entries) e.running++;
    let settled = false;
    return (failed) => {
      if (settled) return;
      settled = true;
      for (const e of entries) {
        e.running--;
        if (failed) e.failures++;
      }
    };
  }

  /** Counts a failure that needed no check (malformed credentials). */
  fail(key: string): void {
    this.entry(key, Date.now(), true)!.failures++;
  }

  private entry(key: string, now: number, create: boolean): { since: number; failures: number; running: number } | undefined {
    let e = this.entries.get(key);
    if (e && now - e.since >= failureWindowMs) {
      // A new window; checks still running carry over.
      e.since = now;
      e.failures = 0;
      if (e.running === 0) {
        this.entries.delete(key);
        e = undefined;
      }
    }
    if (e || !create) return e;
    if (this.entries.size >= maxTrackedKeys) {
      for (const [k, old] of this.entries) if (old.running === 0 && now - old.since >= failureWindowMs) this.entries.delete(k);
      if (this.entries.size >= maxTrackedKeys) this.entries.delete(this.entries.keys().next().value!);
    }
    e = { since: now, failures: 0, running: 0 };
    this.entries.set(key, e);
    return e;
  }
}

/** Checks `Authorization: Basic` headers against a set of users. */
export class BasicAuthenticator {
  /** HMAC key of the verification cache, so that the cache holds nothing a password can be guessed from offline. */
  private readonly cacheKey = randomBytes(32);
  /** Credential HMAC → time the verification expires. */
  private readonly verified = new Map<string, number>();
  /** Verifications in progress, shared by concurrent requests with the same credentials. */
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly dummy: string;
  /** The threads running bcrypt. */
  private readonly pool: BcryptPool;
  private readonly throttle = new FailureThrottle();

  constructor(
    private readonly users: Map<string, string>,
    threads?: number,
  ) {
    this.dummy = dummyHash(users);
    this.pool = new BcryptPool(threads);
  }

  /**
   * Loads an htpasswd file; throws INPUT_UNREADABLE when it cannot be read,
   * and INVALID_ARGUMENT when no user in it could log in. Users whose lines
   * cannot be used (another hash kind) are passed to `onWarning`.
   */
  static async fromFile(path: string, onWarning?: (message: string) => void): Promise<BasicAuthenticator> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw fsError(err, path, 'read');
    }
    const skipped: string[] = [];
    const users = parseHtpasswd(text, skipped);
    const bcryptOnly = 'only bcrypt hashes are accepted (htpasswd -B)';
    if (users.size === 0) throw new OciError('INVALID_ARGUMENT', `${path} holds no user who could log in: ${bcryptOnly}`);
    if (skipped.length > 0) onWarning?.(`${path}: ${skipped.join(', ')} cannot log in: ${bcryptOnly}`);
    return new BasicAuthenticator(users);
  }

  /** Number of usable users. */
  get size(): number {
    return this.users.size;
  }

  /** Stops the bcrypt threads; checks still waiting for one fail. */
  close(): Promise<void> {
    return this.pool.close();
  }

  /**
   * Resolves to nothing when the header carries valid credentials; throws
   * 401 UNAUTHORIZED otherwise, or 429 TOOMANYREQUESTS (with Retry-After)
   * without checking when the client's address or the user name failed too
   * often lately. `address` is the client's address.
   */
  async check(header: string | undefined, address = ''): Promise<void> {
    const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    if (!m) throw unauthorized('authentication required');
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const addressKey = `address ${address}`;
    if (i < 0) {
      this.throttle.fail(addressKey);
      throw unauthorized('invalid credentials');
    }
    const key = createHmac('sha256', this.cacheKey).update(decoded).digest('hex');
    const expires = this.verified.get(key);
    if (expires !== undefined && expires > Date.now()) return;
    this.verified.delete(key);

    // A request with the same credentials as a check in progress waits for its outcome: no new work, no new guess.
    const shared = this.inFlight.get(key);
    if (shared) {
      if (await shared) return;
      throw unauthorized('invalid credentials');
    }
    const user = decoded.slice(0, i);
    const keys = [addressKey, `user ${user}`];
    const wait = this.throttle.blockedFor(keys);
    if (wait > 0) throw tooMany('too many failed logins; try again later', wait);
    if (this.pool.queued >= maxQueuedVerifications) throw tooMany('too many logins being checked; try again later', 1000);
    const settle = this.throttle.start(keys);
    let ok: boolean | undefined;
    try {
      const hash = this.users.get(user);
      const pending = this.pool.compare(decoded.slice(i + 1), hash ?? this.dummy).then((match) => match && hash !== undefined);
      this.inFlight.set(key, pending);
      void pending.finally(() => this.inFlight.delete(key)).catch(() => undefined);
      ok = await pending;
    } finally {
      // A check that could not run (a worker failed, the pool closed) is no failed login.
      settle(ok === false);
    }
    if (ok) {
      this.remember(key);
      return;
    }
    throw unauthorized('invalid credentials');
  }

  private remember(key: string): void {
    const now = Date.now();
    if (this.verified.size >= maxVerified) {
      for (const [k, expires] of this.verified) if (expires <= now) this.verified.delete(k);
      if (this.verified.size >= maxVerified) this.verified.delete(this.verified.keys().next().value!);
    }
    this.verified.set(key, now + verifiedTtlMs);
  }
}

function unauthorized(message: string): RegistryHttpError {
  return httpError(401, 'UNAUTHORIZED', message, undefined, { 'WWW-Authenticate': basicChallenge });
}

function tooMany(message: string, waitMs: number): RegistryHttpError {
  return httpError(429, 'TOOMANYREQUESTS', message, undefined, { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) });
}
