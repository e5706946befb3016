/**
 * HTTP Basic authentication against an htpasswd file holding bcrypt hashes
 * (`user:$2y$...`, as `htpasswd -B` writes). Other hash kinds are ignored, as
 * CNCF distribution refuses them. Credentials are never logged; successful
 * checks are remembered for a few minutes (keyed by an HMAC of the
 * credentials, never the password itself) so that bcrypt's cost is paid once
 * per user and password, not on every request.
 *
 * bcryptjs runs on the event loop, so verification is also what an attacker
 * can make expensive: an unknown user costs as much as a wrong password
 * (otherwise the answer time tells which users exist), at most a couple of
 * verifications run at once (so a burst of guesses delays other requests
 * instead of stalling them) and an address that keeps failing gets its 401s
 * slowed down.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import pLimit from 'p-limit';
import { OciError, fsError } from '../errors.js';
import { httpError, type RegistryHttpError } from './errors.js';

/** The challenge sent with every 401. */
export const basicChallenge = 'Basic realm="oci-os"';

/** How long a successful verification is remembered. */
const verifiedTtlMs = 5 * 60 * 1000;
/** Most remembered verifications; the oldest goes first. */
const maxVerified = 1000;
/** bcrypt comparisons running at once; the rest wait their turn. */
const maxConcurrentVerifications = 2;
/** Failed attempts from one address within `failureWindowMs` before its 401s are delayed. */
const failureThreshold = 10;
const failureWindowMs = 60 * 1000;
/** Delay of each 401 to an address over the threshold. */
const failureDelayMs = 1000;
/** Most addresses whose failures are tracked. */
const maxTrackedAddresses = 10_000;

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

/** Checks `Authorization: Basic` headers against a set of users. */
export class BasicAuthenticator {
  /** HMAC key of the verification cache, so that the cache holds nothing a password can be guessed from offline. */
  private readonly cacheKey = randomBytes(32);
  /** Credential HMAC → time the verification expires. */
  private readonly verified = new Map<string, number>();
  /** Verifications in progress, shared by concurrent requests with the same credentials. */
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly dummy: string;
  /** Queues bcrypt comparisons so that at most `maxConcurrentVerifications` run at once. */
  private readonly limit = pLimit(maxConcurrentVerifications);
  /** Client address → failures in the current window. */
  private readonly failures = new Map<string, { since: number; count: number }>();

  constructor(private readonly users: Map<string, string>) {
    this.dummy = dummyHash(users);
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

  /**
   * Resolves to nothing when the header carries valid credentials; throws
   * 401 UNAUTHORIZED otherwise. `address` is the client's address, used to
   * slow down repeated failures.
   */
  async check(header: string | undefined, address = ''): Promise<void> {
    const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    if (!m) throw unauthorized('authentication required');
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i >= 0) {
      const key = createHmac('sha256', this.cacheKey).update(decoded).digest('hex');
      const expires = this.verified.get(key);
      if (expires !== undefined && expires > Date.now()) return;
      this.verified.delete(key);
      let pending = this.inFlight.get(key);
      if (!pending) {
        const hash = this.users.get(decoded.slice(0, i));
        pending = this.verify(decoded.slice(i + 1), hash ?? this.dummy).then((ok) => ok && hash !== undefined);
        this.inFlight.set(key, pending);
        void pending.finally(() => this.inFlight.delete(key)).catch(() => undefined);
      }
      if (await pending) {
        this.remember(key);
        return;
      }
    }
    const delay = this.recordFailure(address);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    throw unauthorized('invalid credentials');
  }

  /** One bcrypt comparison, waiting while `maxConcurrentVerifications` others run. */
  private verify(password: string, hash: string): Promise<boolean> {
    return this.limit(() => bcrypt.compare(password, hash));
  }

  private remember(key: string): void {
    const now = Date.now();
    if (this.verified.size >= maxVerified) {
      for (const [k, expires] of this.verified) if (expires <= now) this.verified.delete(k);
      if (this.verified.size >= maxVerified) this.verified.delete(this.verified.keys().next().value!);
    }
    this.verified.set(key, now + verifiedTtlMs);
  }

  /** Counts a failure from `address`; returns how long to hold back its 401. */
  private recordFailure(address: string): number {
    const now = Date.now();
    const entry = this.failures.get(address);
    if (entry && now - entry.since < failureWindowMs) {
      entry.count++;
      return entry.count > failureThreshold ? failureDelayMs : 0;
    }
    this.failures.delete(address);
    if (this.failures.size >= maxTrackedAddresses) {
      for (const [a, e] of this.failures) if (now - e.since >= failureWindowMs) this.failures.delete(a);
      if (this.failures.size >= maxTrackedAddresses) this.failures.delete(this.failures.keys().next().value!);
    }
    this.failures.set(address, { since: now, count: 1 });
    return 0;
  }
}

function unauthorized(message: string): RegistryHttpError {
  return httpError(401, 'UNAUTHORIZED', message, undefined, { 'WWW-Authenticate': basicChallenge });
}
