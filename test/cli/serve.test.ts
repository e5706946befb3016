import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { containerImage, writeLayout } from '../copy/fixtures.js';
import { cliPath, runCli, tempDir } from '../helpers/cli.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';
import { buildImage, KiB, sha256 } from './image-helpers.js';

/** Starts `oci-os registry serve` as a child on a free port; resolves with the URL it printed. */
async function serve(
  t: TestContext,
  args: string[],
): Promise<{ url: string; address: string; child: ChildProcess; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [cliPath, 'registry', 'serve', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  return { url, address: url.slice('http://'.length), child, exited, stderr: () => err };
}

function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('skopeo copies an OS image and a multi-layer container image into and out of `oci-os registry serve`', async (t) => {
  if (!requireTools(t, 'skopeo')) return;
  const root = await tempDir(t);
  const reg = await serve(t, ['--root', join(root, 'registry')]);
  assert.match(reg.url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const img = await buildImage(root, { size: 500 * KiB });
  await skopeo(['copy', '--dest-tls-verify=false', img.location, `docker://${reg.address}/os/image:v1`]);
  const raw = (await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.address}/os/image:v1`])).stdout;
  assert.equal(sha256(Buffer.from(raw)), img.digest, 'the manifest is served byte for byte');
  await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.address}/os/image:v1`, `oci:${join(root, 'os-back')}:v1`]);
  const v = await runCli(['verify', `oci:${join(root, 'os-back')}:v1`]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, new RegExp(`${img.digest}: ok`));

  const image = await containerImage('amd64', { layers: 2, layerSize: 120_000 });
  await writeLayout(join(root, 'c'), image.manifest, image.blobs, 'v1');
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${join(root, 'c')}:v1`, `docker://${reg.address}/apps/shell:1`]);
  const info = JSON.parse((await skopeo(['inspect', '--tls-verify=false', `docker://${reg.address}/apps/shell:1`])).stdout);
  assert.equal(info.Digest, image.manifest.desc.digest);
  assert.equal(info.Architecture, 'amd64');
  assert.equal(info.Os, 'linux');
  assert.deepEqual(info.Layers, [image.blobs[1]!.desc.digest, image.blobs[2]!.desc.digest]);
  await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.address}/apps/shell:1`, `oci:${join(root, 'c-back')}:v1`]);
  const cv = await runCli(['verify', `oci:${join(root, 'c-back')}:v1`, '--json']);
  assert.equal(cv.code, 0, cv.stderr);
  assert.equal(JSON.parse(cv.stdout).digest, image.manifest.desc.digest);

  reg.child.kill('SIGTERM');
  assert.equal(await reg.exited, 0, 'stops cleanly on SIGTERM');
  await assert.rejects(get(`${reg.url}/v2/`), /ECONNREFUSED/);
});

test('`registry serve --htpasswd` asks for credentials, prints JSON and stops on SIGINT', async (t) => {
  if (!requireTools(t, 'skopeo')) return;
  const root = await tempDir(t);
  const file = join(root, 'htpasswd');
  await writeFile(file, `alice:${bcrypt.hashSync('s3cret-pass', 4)}\n`);
  const child = spawn(process.execPath, [cliPath, 'registry', 'serve', '--root', join(root, 'r'), '--listen', '127.0.0.1:0', '--htpasswd', file, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const line = await new Promise<string>((resolve) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
  });
  const info = JSON.parse(line) as { url: string; address: string; root: string };
  assert.equal(info.root, join(root, 'r'));
  assert.equal(await get(`${info.url}/v2/`), 401);
  assert.equal(await get(`${info.url}/v2/`, { authorization: `Basic ${Buffer.from('alice:s3cret-pass').toString('base64')}` }), 200);

  const img = await buildImage(root, { size: 50 * KiB });
  await assert.rejects(
    skopeo(['copy', '--dest-tls-verify=false', img.location, `docker://${info.address}/os/image:v1`]),
    /unauthorized|authentication required/i,
  );
  await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret-pass', img.location, `docker://${info.address}/os/image:v1`]);
  const pulled = await runCli(['pull', `${info.address}/os/image:v1`, '-o', `oci:${join(root, 'p')}`, '--username', 'alice'], {
    env: { OCI_OS_PASSWORD: 's3cret-pass' },
  });
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal(pulled.stdout.trim(), img.digest);
  assert.doesNotMatch(pulled.stdout + pulled.stderr, /s3cret-pass/);

  child.kill('SIGINT');
  assert.equal(await exited, 0);
});

test('`registry serve` refuses a --root that is a file and an htpasswd file nobody could log in with, and warns of unusable lines', async (t) => {
  const root = await tempDir(t);
  const file = join(root, 'plain-file');
  await writeFile(file, 'x');
  const notDir = await runCli(['registry', 'serve', '--root', file, '--listen', '127.0.0.1:0']);
  assert.equal(notDir.code, 2, notDir.stderr);
  assert.match(notDir.stderr, /^oci-os: error: .*plain-file is not a directory\n$/);

  const sha = join(root, 'sha.htpasswd');
  await writeFile(sha, 'bob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n');
  const none = await runCli(['registry', 'serve', '--root', join(root, 'r1'), '--listen', '127.0.0.1:0', '--htpasswd', sha]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /sha\.htpasswd holds no user who could log in: only bcrypt hashes are accepted \(htpasswd -B\)/);

  const mixed = join(root, 'mixed.htpasswd');
  await writeFile(mixed, `alice:${bcrypt.hashSync('pw', 4)}\nbob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\ncarol:plaintext\n`);
  const s = await serve(t, ['--root', join(root, 'r2'), '--htpasswd', mixed]);
  assert.equal(await get(`${s.url}/v2/`, { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` }), 200);
  s.child.kill('SIGINT');
  await s.exited;
  assert.match(s.stderr(), /oci-os: warning: .*mixed\.htpasswd: bob, carol cannot log in: only bcrypt hashes are accepted/);
});
