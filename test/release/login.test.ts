import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readAuthFileCredentials } from '../../src/registry/auth/credentials.js';
import { parseLoginTarget } from '../../src/registry/auth/login.js';
import { eraseCredentials, storeCredentials } from '../../src/registry/auth/store.js';
import { cliPath, repoRoot, runCli, tempDir } from '../helpers/cli.js';
import { type RegistryHandle, startDockerRegistry } from '../helpers/docker-registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';

async function registry(t: Parameters<typeof tempDir>[0]): Promise<RegistryHandle> {
  const reg = await startDockerRegistry({ auth: 'htpasswd' });
  t.after(() => reg.stop());
  return reg;
}

/** Environment that keeps every auth file and cache inside `dir`. */
function isolated(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HOME: dir, DOCKER_CONFIG: join(dir, 'docker'), REGISTRY_AUTH_FILE: '', OCI_OS_CACHE_DIR: join(dir, 'cache'), ...extra };
}

// Credentials in the environment would win over the auth files under test.
delete process.env.OCI_OS_USERNAME;
delete process.env.OCI_OS_PASSWORD;

const kernel = join(repoRoot, 'fixtures', 'payloads', 'kernel.efi');

test('login stores credentials skopeo uses; skopeo login is used by oci-os; 0600, other entries kept; wrong password stores nothing; logout', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const reg = await registry(t);
  const dir = await tempDir(t);
  const authFile = join(dir, 'auth.json');
  const other = {
    auths: { 'other.example.com': { auth: Buffer.from('someone:secret').toString('base64') } },
    credHelpers: { 'x.example.com': 'none' },
    psFormat: 'table',
  };
  await writeFile(authFile, JSON.stringify(other), { mode: 0o644 });
  const env = isolated(dir, { REGISTRY_AUTH_FILE: authFile });

  // Wrong password: exit 3, file unchanged.
  const bad = await runCli(['login', reg.host, '-u', reg.username!, '--password-stdin'], { env, input: 'not-the-password\n' });
  assert.equal(bad.code, 3, bad.stderr);
  assert.match(bad.stderr, /rejected the credentials/);
  assert.ok(!bad.stderr.includes('not-the-password'));
  assert.deepEqual(JSON.parse(await readFile(authFile, 'utf8')), other);

  // No password source: a usage error, never a prompt without a terminal.
  const [noPw, ok] = await Promise.all([
    runCli(['login', reg.host, '-u', reg.username!], { env }),
    runCli(['login', reg.host, '-u', reg.username!, '--password-stdin', '--json'], { env, input: `${reg.password}\n` }),
  ]);
  assert.equal(noPw.code, 2, noPw.stderr);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!ok.stdout.includes(reg.password!) && !ok.stderr.includes(reg.password!), 'the password is never printed');
  const out = JSON.parse(ok.stdout);
  assert.equal(out.key, reg.host);
  assert.equal(out.verified, true);
  assert.equal((await stat(authFile)).mode & 0o777, 0o600);
  const cfg = JSON.parse(await readFile(authFile, 'utf8'));
  assert.deepEqual(cfg.auths['other.example.com'], other.auths['other.example.com']);
  assert.deepEqual(cfg.credHelpers, other.credHelpers);
  assert.equal(cfg.psFormat, 'table');
  assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), `${reg.username}:${reg.password}`);

  // oci-os pushes with the stored login; skopeo reads the same file.
  const push = await runCli(['push', `${reg.host}/rel/login:1`, '-p', `kernel.efi=${kernel}`, '--json'], { env });
  assert.equal(push.code, 0, push.stderr);
  const digest = JSON.parse(push.stdout).digest as string;
  const inspected = await skopeo(['inspect', '--raw', '--tls-verify=false', '--authfile', authFile, `docker://${reg.host}/rel/login:1`]);
  assert.equal(JSON.parse(inspected.stdout).artifactType, 'application/vnd.monogon.os.image.v1');

  // Reverse: skopeo login writes a file oci-os reads.
  const skopeoFile = join(dir, 'skopeo-auth.json');
  await skopeo(['login', '--tls-verify=false', '--authfile', skopeoFile, '-u', reg.username!, '-p', reg.password!, reg.host]);
  const env2 = isolated(join(dir, 'b'), { REGISTRY_AUTH_FILE: skopeoFile });
  // (Without credentials the registry refuses: exit 3.) Logout removes only our entry.
  const [insp, noCreds, lo] = await Promise.all([
    runCli(['inspect', `${reg.host}/rel/login@${digest}`, '--json'], { env: env2 }),
    runCli(['inspect', `${reg.host}/rel/login@${digest}`], { env: isolated(join(dir, 'c')) }),
    runCli(['logout', reg.host, '--json'], { env }),
  ]);
  assert.equal(insp.code, 0, insp.stderr);
  assert.equal(noCreds.code, 3, noCreds.stderr);
  assert.equal(lo.code, 0, lo.stderr);
  assert.equal(JSON.parse(lo.stdout).removed, true);
  const after = JSON.parse(await readFile(authFile, 'utf8'));
  assert.equal(after.auths[reg.host], undefined);
  assert.deepEqual(after.auths['other.example.com'], other.auths['other.example.com']);
});

test('login through a credHelpers helper: store, get and erase go through docker-credential-NAME', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await registry(t);
  const dir = await tempDir(t);
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const storeFile = join(dir, 'helper-store.json');
  // A helper that keeps one JSON object per server URL in a file (node, so no jq is needed).
  const helper = `#!${process.execPath}
const fs = require('fs');
const file = ${JSON.stringify(storeFile)};
const db = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  const action = process.argv[2];
  if (action === 'store') { const j = JSON.parse(input); db[j.ServerURL] = { Username: j.Username, Secret: j.Secret }; }
  else if (action === 'get') { const e = db[input.trim()]; if (!e) { process.stdout.write('credentials not found in native keychain'); process.exit(1); } process.stdout.write(JSON.stringify({ ServerURL: input.trim(), ...e })); }
  else if (action === 'erase') { if (!db[input.trim()]) { process.stdout.write('credentials not found in native keychain'); process.exit(1); } delete db[input.trim()]; }
  fs.writeFileSync(file, JSON.stringify(db));
});
`;
  await writeFile(join(bin, 'docker-credential-test'), helper);
  await chmod(join(bin, 'docker-credential-test'), 0o755);
  const env = isolated(dir, { PATH: `${bin}:${process.env.PATH}` });
  const configFile = join(dir, 'docker', 'config.json');
  await mkdir(join(dir, 'docker'));
  await writeFile(configFile, JSON.stringify({ credHelpers: { [reg.host]: 'test' } }));

  const ok = await runCli(['login', reg.host, '-u', reg.username!, '--password-stdin', '--json'], { env, input: reg.password! });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).helper, 'docker-credential-test');
  const stored = JSON.parse(await readFile(storeFile, 'utf8'));
  assert.deepEqual(stored[reg.host], { Username: reg.username, Secret: reg.password });
  const cfgText = await readFile(configFile, 'utf8');
  assert.ok(!cfgText.includes(reg.password!), 'the secret is not written to the config file');
  assert.equal((await stat(configFile)).mode & 0o777, 0o600);

  // get: a push authenticates with what the helper returns.
  const push = await runCli(['push', `${reg.host}/rel/helper:1`, '-p', `kernel.efi=${kernel}`], { env });
  assert.equal(push.code, 0, push.stderr);

  const lo = await runCli(['logout', reg.host, '--json'], { env });
  assert.equal(lo.code, 0, lo.stderr);
  assert.equal(JSON.parse(lo.stdout).removed, true);
  assert.deepEqual(JSON.parse(await readFile(storeFile, 'utf8')), {});
  const again = await runCli(['logout', reg.host, '--json'], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).removed, false);
});

test('login keys: docker.io is stored as https://index.docker.io/v1/ (the file functions, no registry)', async (t) => {
  const dir = await tempDir(t);
  const env = { HOME: dir, DOCKER_CONFIG: join(dir, 'd') };
  assert.deepEqual(parseLoginTarget('https://index.docker.io/v1/'), { registry: 'docker.io', apiHost: 'registry-1.docker.io' });
  assert.deepEqual(parseLoginTarget(undefined), { registry: 'docker.io', apiHost: 'registry-1.docker.io' });
  assert.deepEqual(parseLoginTarget('http://127.0.0.1:5000'), { registry: '127.0.0.1:5000', apiHost: '127.0.0.1:5000', plainHttp: true });
  assert.throws(() => parseLoginTarget('ftp://x.example.com'), /not a registry/);
  await mkdir(join(dir, 'd'));
  await writeFile(join(dir, 'd', 'config.json'), JSON.stringify({ auths: { 'docker.io': { auth: 'b2xkOm9sZA==' } } }));
  const r = await storeCredentials('docker.io', { username: 'me', password: 'pw' }, { env });
  assert.equal(r.key, 'https://index.docker.io/v1/');
  const cfg = JSON.parse(await readFile(join(dir, 'd', 'config.json'), 'utf8'));
  assert.deepEqual(Object.keys(cfg.auths), ['https://index.docker.io/v1/'], 'the old spelling of the key is replaced');
  assert.deepEqual(await readAuthFileCredentials('docker.io', { env }), { username: 'me', password: 'pw' });
  await assert.rejects(storeCredentials('ghcr.io', { username: 'a:b', password: 'x' }, { env }), /cannot contain ":"/);
  assert.equal((await eraseCredentials('docker.io', { env })).removed, true);
  assert.equal(await readAuthFileCredentials('docker.io', { env }), undefined);
});

/** Drives `oci-os login` on a pseudo-terminal: waits for each prompt, types the answer, returns what the terminal showed. */
const ptyDriver = `
import os, pty, sys, time
cli, host, user, pw = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[5], [sys.argv[5], cli, 'login', host])
out = b''
def read_until(tok, timeout=30):
    global out
    end = time.time() + timeout
    while tok not in out and time.time() < end:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            return
        if not chunk:
            return
        out += chunk
read_until(b'Username: ')
os.write(fd, (user + '\\r').encode())
read_until(b'Password: ')
os.write(fd, (pw + '\\r').encode())
read_until(b'\\x00', 30)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`;

test('login on a terminal asks for the user name and reads the password without echo', async (t) => {
  if (!requireTools(t, 'docker-registry', 'python3')) return;
  const reg = await registry(t);
  const dir = await tempDir(t);
  const driver = join(dir, 'drive_login.py');
  await writeFile(driver, ptyDriver);
  const r = spawnSync('python3', [driver, cliPath, reg.host, reg.username!, reg.password!, process.execPath], {
    env: { ...process.env, ...isolated(dir) },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Password: /);
  assert.match(r.stdout, /Login succeeded/);
  assert.ok(r.stdout.includes(reg.username!), 'the user name is echoed');
  assert.ok(!r.stdout.includes(reg.password!), 'the password is not echoed');
  const cfg = JSON.parse(await readFile(join(dir, 'docker', 'config.json'), 'utf8'));
  assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), `${reg.username}:${reg.password}`);
});
