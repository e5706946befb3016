import { execFile } from 'node:child_process';
import { createPrivateKey, type KeyObject, randomBytes, sign, timingSafeEqual, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One access entry of a registry token (`access` claim). */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

/** What the token server saw in one token request (secrets are never kept). */
export interface TokenRequestRecord {
  /** `GET` for the Docker token flow, `POST` for the OAuth2 form flow. */
  method: 'GET' | 'POST';
  /** Requested scopes, e.g. `repository:foo:pull,push`. */
  scope: string[];
  /** Account the request authenticated as (or claimed, when it failed). */
  account?: string;
  /** True when valid credentials (Basic, password grant or refresh token) came with the request. */
  basicAuthOk: boolean;
  /** OAuth2 grant type of a POST. */
  grantType?: string;
  /** HTTP status the server answered. */
  status: number;
}

/** Options of {@link startTokenServer}. */
export interface TokenServerOptions {
  /** Accounts allowed to authenticate: username → password. */
  users?: Record<string, string>;
  /** `service` the tokens are for (the JWT `aud`). Default `oci-os-test-registry`. */
  service?: string;
  /** JWT `iss`; must equal the registry's `auth.token.issuer`. Default `oci-os-test-issuer`. */
  issuer?: string;
  /** Token lifetime in seconds (`expires_in`). Default 300. Can be changed later on the handle. */
  expiresIn?: number;
  /**
   * Anonymous requests (no credentials): `true` grants `pull` only, `false`
   * (default) answers 401. Wrong credentials always get 401.
   */
  allowAnonymous?: boolean;
  /**
   * CNCF distribution accepts a token up to 60 s after its `exp` (clock
   * leeway). When true, `exp` is set 60 s early so the registry really
   * refuses the token `expiresIn` seconds after issue. Default false.
   */
  compensateRegistryLeeway?: boolean;
  /** Narrows what an authenticated account gets; default: every requested action. */
  grant?: (account: string, requested: TokenAccess) => string[];
}

/** A running token server made by {@link startTokenServer}. */
export interface TokenServerHandle {
  /** Origin, `http://127.0.0.1:PORT`. */
  url: string;
  /** Token endpoint (`url + "/token"`), the registry's `auth.token.realm`. */
  realm: string;
  /** The `service` (JWT audience). */
  service: string;
  /** The `iss` claim. */
  issuer: string;
  /** PEM certificate whose key signs the tokens; the registry's `rootcertbundle`. */
  certFile: string;
  /** How many tokens (access tokens) were issued so far. */
  issued: number;
  /** Every token request, in order. */
  requests: TokenRequestRecord[];
  /** Token lifetime in seconds for tokens issued from now on. */
  expiresIn: number;
  /** Signs a token directly (e.g. an already expired one: pass a negative lifetime). */
  mint(account: string, access: TokenAccess[], expiresIn?: number): string;
  /** Stops the server and removes its key files. */
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Parses `type:name:actions` (the name may itself hold colons, e.g. a port). */
export function parseScope(scope: string): TokenAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter(Boolean);
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) req.destroy(new Error('token request body too large'));
      else parts.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Starts a Docker-registry token server (the `auth.token` scheme of CNCF
 * distribution) on `127.0.0.1:0`. It serves `GET /token?service=&scope=`
 * (Basic credentials optional) and the OAuth2 form `POST /token`
 * (`grant_type=password` or `refresh_token`), and signs RS256 JWTs whose
 * header carries the signing certificate in `x5c`.
 */
export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TokenServerHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'oci-os-token-'));
  const keyFile = join(dir, 'token-key.pem');
  const certFile = join(dir, 'token-cert.pem');
  try {
    await run(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=oci-os test token signer'],
      { timeout: 30_000 },
    );
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make the token signing key: ${(e as { stderr?: string }).stderr ?? e}`);
  }
  const key: KeyObject = createPrivateKey(await readFile(keyFile));
  const certDer = new X509Certificate(await readFile(certFile)).raw.toString('base64');
  const users = opts.users ?? {};
  const service = opts.service ?? 'oci-os-test-registry';
  const issuer = opts.issuer ?? 'oci-os-test-issuer';
  const refreshTokens = new Map<string, string>(); // token → account

  const mint = (account: string, access: TokenAccess[], expiresIn = handle.expiresIn): string => {
    const now = Math.floor(Date.now() / 1000);
    const leeway = opts.compensateRegistryLeeway ? 60 : 0;
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: account,
      aud: service,
      exp: now + expiresIn - leeway,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
  };

  const grantFor = (account: string | undefined, scopes: string[]): TokenAccess[] => {
    const out: TokenAccess[] = [];
    for (const s of scopes) {
      const a = parseScope(s);
      if (!a) continue;
      const actions = account === undefined ? a.actions.filter((x) => x === 'pull') : opts.grant ? opts.grant(account, a) : a.actions;
      if (actions.length > 0) out.push({ ...a, actions });
    }
    return out;
  };

  const checkUser = (user: string, pass: string): boolean => Object.hasOwn(users, user) && safeEqual(users[user]!, pass);

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const deny = (res: ServerResponse, rec: TokenRequestRecord, message: string): void => {
    rec.status = 401;
    send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message }] }, { 'www-authenticate': `Basic realm="${service}"` });
  };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname !== '/token') return send(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
    const issuedAt = new Date().toISOString();
    if (req.method === 'GET') {
      const rec: TokenRequestRecord = {
        method: 'GET',
        scope: u.searchParams
          .getAll('scope')
          .flatMap((x) => x.split(' '))
          .filter(Boolean),
        basicAuthOk: false,
        status: 0,
      };
      handle.requests.push(rec);
      const auth = req.headers.authorization;
      let account: string | undefined;
      if (auth) {
        const m = /^Basic\s+(.+)$/i.exec(auth);
        const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
        const colon = decoded.indexOf(':');
        rec.account = colon >= 0 ? decoded.slice(0, colon) : undefined;
        if (colon < 0 || !checkUser(decoded.slice(0, colon), decoded.slice(colon + 1))) return deny(res, rec, 'invalid credentials');
        account = rec.account;
        rec.basicAuthOk = true;
      } else if (!opts.allowAnonymous) {
        return deny(res, rec, 'authentication required');
      }
      const token = mint(account ?? '', grantFor(account, rec.scope));
      handle.issued++;
      rec.status = 200;
      return send(res, 200, { token, access_token: token, expires_in: handle.expiresIn, issued_at: issuedAt });
    }
    if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const grantType = form.get('grant_type') ?? '';
      const scope = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const rec: TokenRequestRecord = { method: 'POST', scope, basicAuthOk: false, grantType, status: 0 };
      handle.requests.push(rec);
      let account: string | undefined;
      if (grantType === 'password') {
        rec.account = form.get('username') ?? undefined;
        if (!rec.account || !checkUser(rec.account, form.get('password') ?? '')) return deny(res, rec, 'invalid credentials');
        account = rec.account;
      } else if (grantType === 'refresh_token') {
        account = refreshTokens.get(form.get('refresh_token') ?? '');
        rec.account = account;
        if (account === undefined) return deny(res, rec, 'invalid refresh token');
      } else {
        rec.status = 400;
        return send(res, 400, { error: 'unsupported_grant_type' });
      }
      rec.basicAuthOk = true;
      const refresh = randomBytes(24).toString('base64url');
      refreshTokens.set(refresh, account);
      const token = mint(account, grantFor(account, scope));
      handle.issued++;
      rec.status = 200;
      return send(res, 200, {
        access_token: token,
        refresh_token: refresh,
        expires_in: handle.expiresIn,
        issued_at: issuedAt,
        scope: scope.join(' '),
      });
    }
    send(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] });
  };

  const server = createServer((req, res) => {
    handler(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { errors: [{ code: 'UNKNOWN', message: 'token server error' }] });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const handle: TokenServerHandle = {
    url,
    realm: `${url}/token`,
    service,
    issuer,
    certFile,
    issued: 0,
    requests: [],
    expiresIn: opts.expiresIn ?? 300,
    mint,
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return handle;
}
