import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of a certificate authority made by {@link makeCa}. */
export interface CaFiles {
  /** PEM certificate of the CA; give it to clients as the trust root. */
  caCert: string;
  /** PEM private key of the CA. */
  caKey: string;
}

/** Paths of a server certificate made by {@link makeServerCert}. */
export interface ServerCertFiles {
  /** PEM certificate (leaf only). */
  cert: string;
  /** PEM private key, unencrypted. */
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * Creates a throw-away CA (RSA 2048, valid one day) in `dir` with the
 * openssl CLI. Files: `ca.pem`, `ca-key.pem`.
 */
export async function makeCa(dir: string): Promise<CaFiles> {
  const caCert = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      caKey,
      '-out',
      caCert,
      '-days',
      '1',
      '-subj',
      '/CN=oci-os test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { caCert, caKey };
}

/**
 * Creates a server certificate signed by `ca`, with a subjectAltName for
 * each of `hosts` (IP addresses become `IP:` entries, names `DNS:`).
 * Files: `server.pem`, `server-key.pem` in `dir`.
 */
export async function makeServerCert(ca: CaFiles, dir: string, hosts: string[]): Promise<ServerCertFiles> {
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server-key.pem');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server-ext.cnf');
  const san = hosts.map((h) => (/^[0-9.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  await writeFile(
    ext,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n` + `extendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
  );
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${hosts[0] ?? 'localhost'}`], dir);
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', ca.caKey, '-CAcreateserial', '-out', cert, '-days', '1', '-sha256', '-extfile', ext],
    dir,
  );
  return { cert, key };
}
