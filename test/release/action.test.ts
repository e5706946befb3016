import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { requireTools } from '../helpers/tools.js';

function runScript(cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', [join(repoRoot, 'scripts', 'action-push.sh')], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test("the action's push step: payload lines, tags, git provenance, password on stdin, digest output", async (t) => {
  if (!requireTools(t, 'docker-registry', 'git', 'bash')) return;
  const reg = await startDockerRegistry({ auth: 'htpasswd' });
  t.after(() => reg.stop());
  const ws = await tempDir(t);
  const gitEnv = {
    ...process.env,
    GIT_AUTHOR_NAME: 'T',
    GIT_AUTHOR_EMAIL: 't@e',
    GIT_COMMITTER_NAME: 'T',
    GIT_COMMITTER_EMAIL: 't@e',
    GIT_CONFIG_GLOBAL: '/dev/null',
  };
  execFileSync('git', ['init', '-q'], { cwd: ws, env: gitEnv });
  await copyFile(join(repoRoot, 'fixtures', 'payloads', 'kernel.efi'), join(ws, 'kernel.efi'));
  await writeFile(join(ws, '.gitignore'), 'out.txt\n');
  execFileSync('git', ['add', '.'], { cwd: ws, env: gitEnv });
  execFileSync('git', ['commit', '-q', '-m', 'x'], { cwd: ws, env: gitEnv });
  execFileSync('git', ['tag', 'v3.0.0'], { cwd: ws, env: gitEnv });
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ws, encoding: 'utf8' }).trim();
  const home = await tempDir(t);
  const output = join(ws, 'out.txt');
  await writeFile(output, '');
  const base = {
    HOME: home,
    DOCKER_CONFIG: join(home, '.docker'),
    OCI_OS_CACHE_DIR: join(home, '.cache'),
    GITHUB_OUTPUT: output,
    RUNNER_TEMP: home,
    INPUT_REFERENCE: `${reg.host}/rel/action:v3`,
    INPUT_PAYLOADS: `\n  kernel.efi=kernel.efi  \n\n`,
    INPUT_TAGS: 'latest, stable',
    INPUT_USERNAME: reg.username!,
    INPUT_GIT: 'true',
    INPUT_EXTRA_ARGS: '--product-version {git-describe} --compression none',
  };

  const wrong = await runScript(ws, { ...base, INPUT_PASSWORD: 'wrong-password' });
  assert.equal(wrong.code, 3, wrong.stderr);
  assert.equal(await readFile(output, 'utf8'), '', 'no outputs after a failed push');

  const r = await runScript(ws, { ...base, INPUT_PASSWORD: reg.password! });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!(r.stdout + r.stderr).includes(reg.password!), 'the password is never printed');
  const out = Object.fromEntries(
    (await readFile(output, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.match(out.digest!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(out.reference, `${reg.host}/rel/action@${out.digest}`);

  const auth = {
    authorization: `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString('base64')}`,
    accept: 'application/vnd.oci.image.manifest.v1+json',
  };
  for (const tag of ['v3', 'latest', 'stable']) {
    const res = await fetch(`${reg.url}/v2/rel/action/manifests/${tag}`, { method: 'HEAD', headers: auth });
    assert.equal(res.headers.get('docker-content-digest'), out.digest, `tag ${tag}`);
  }
  const manifest = (await (await fetch(`${reg.url}/v2/rel/action/manifests/${out.digest}`, { headers: auth })).json()) as any;
  assert.equal(manifest.annotations['org.opencontainers.image.revision'], head);
  const config = (await (await fetch(`${reg.url}/v2/rel/action/blobs/${manifest.config.digest}`, { headers: auth })).json()) as any;
  assert.equal(config.product_info.commit_hash, head);
  assert.equal(config.product_info.build_tree_dirty, false, 'the outputs file is ignored, so the tree is clean');
  assert.equal(config.product_info.version, 'v3.0.0');

  const noPayloads = await runScript(ws, { ...base, INPUT_PAYLOADS: '\n', INPUT_PASSWORD: reg.password! });
  assert.equal(noPayloads.code, 2, noPayloads.stderr);
});

test('action.yml hands inputs to the shell through env only, and names the push script', async () => {
  const text = await readFile(join(repoRoot, 'action.yml'), 'utf8');
  assert.match(text, /using: composite/);
  assert.match(text, /scripts\/action-push\.sh/);
  for (const line of text.split('\n').filter((l) => /^\s*run:/.test(l))) {
    assert.ok(!line.includes('${{'), `expressions are not expanded into scripts: ${line.trim()}`);
  }
  for (const input of ['reference', 'payloads', 'tags', 'username', 'password', 'git', 'extra-args']) {
    assert.match(text, new RegExp(`^  ${input}:`, 'm'), `input ${input}`);
    assert.match(text, new RegExp(`\\$\\{\\{ inputs\\.${input} \\}\\}`), `input ${input} is used`);
  }
  assert.match(text, /digest:\n\s+description:[^\n]*\n\s+value: \$\{\{ steps\.push\.outputs\.digest \}\}/);
});
