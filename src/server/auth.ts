/**
 * HTTP Basic authentication against an htpasswd file holding bcrypt hashes
 * (`user:$2y$...`, as `htpasswd -B` writes). Other hash kinds are ignored, as
 * CNCF distribution refuses them. Credentials are never logged; successful
 * checks are remembered (by a hash of the credentials) so that bcrypt's cost
 * is paid once per user and password, not on every request.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { fsError } from '../errors.js';
import { httpError, type RegistryHttpError } from './errors.js';

/** The challenge sent with every 401. */
export const basicChallenge = 'Basic realm="oci-os"';

/** Parses htpasswd text into user → bcrypt hash; lines with other hash kinds are skipped. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const hash = line.slice(i + 1);
    if (/^\$2[aby]\$\d\d\$/.test(hash)) users.set(line.slice(0, i), hash);
  }
  return users;
}

/** Checks `Authorization: Basic` headers against a set of users. */
export class BasicAuthenticator {
  private readonly verified = new Set<string>();

  constructor(private readonly users: Map<string, string>) {}

  /** Loads an htpasswd file; throws INPUT_UNREADABLE when it cannot be read. */
  static async fromFile(path: string): Promise<BasicAuthenticator> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw fsError(err, path, 'read');
    }
    return new BasicAuthenticator(parseHtpasswd(text));
  }

  /** Number of usable users. */
  get size(): number {
    return this.users.size;
  }

  /** Resolves to nothing when the header carries valid credentials; throws 401 UNAUTHORIZED otherwise. */
  async check(header: string | undefined): Promise<void> {
    const m = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    if (!m) throw unauthorized('authentication required');
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) throw unauthorized('invalid credentials');
    const user = decoded.slice(0, i);
    const key = createHash('sha256').update(decoded).digest('hex');
    if (this.verified.has(key)) return;
    const hash = this.users.get(user);
    if (hash === undefined || !(await bcrypt.compare(decoded.slice(i + 1), hash))) {
      throw unauthorized('invalid credentials');
    }
    if (this.verified.size > 1000) this.verified.clear();
    this.verified.add(key);
  }
}

function unauthorized(message: string): RegistryHttpError {
  return httpError(401, 'UNAUTHORIZED', message, undefined, { 'WWW-Authenticate': basicChallenge });
}
