import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { rfc3339Utc, stripUrlCredentials } from '../../src/provenance/git.js';
import { startRegistryServer } from '../../src/server/index.js';
import { repoRoot, runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

const gitEnv = {
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 't@example.com',
  GIT_AUTHOR_DATE: '2025-05-08T20:26:46+02:00',
  GIT_COMMITTER_DATE: '2025-05-08T20:26:46+02:00',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: { ...process.env, ...gitEnv }, encoding: 'utf8' }).trim();
}

async function readBlob(layout: string, digest: string): Promise<any> {
  return JSON.parse(await readFile(join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8'));
}

/** Builds into a layout from `cwd`; returns the manifest and the config's product_info. */
async function build(cwd: string, out: string, extra: string[]): Promise<{ manifest: any; productInfo: any }> {
  const r = await runCli(['build', '-p', 'kernel.efi=kernel.efi', '--compression', 'none', '-o', `oci:${out}:x`, '--json', ...extra], { cwd });
  assert.equal(r.code, 0, r.stderr);
  const manifest = await readBlob(out, JSON.parse(r.stdout).digest);
  return { manifest, productInfo: (await readBlob(out, manifest.config.digest)).product_info };
}

test('--git fills product_info from a clean and a dirty tree; --annotate-git and --annotation set manifest annotations; {git-describe}', async (t) => {
  if (!requireTools(t, 'git')) return;
  const repo = await tempDir(t);
  const out = await tempDir(t);
  git(repo, 'init', '-q');
  await copyFile(join(repoRoot, 'fixtures', 'payloads', 'kernel.efi'), join(repo, 'kernel.efi'));
  await writeFile(join(repo, '.gitignore'), 'ignored.txt\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'first');
  git(repo, 'tag', 'v1.2.0');
  git(repo, 'remote', 'add', 'origin', 'https://builder:s3cret@git.example.com/acme/os.git');
  const head = git(repo, 'rev-parse', 'HEAD');
  await writeFile(join(repo, 'ignored.txt'), 'ignored files do not make the tree dirty');

  const clean = await build(repo, join(out, 'clean'), [
    '--git',
    '--annotate-git',
    '--annotation',
    'com.example.channel=stable',
    '--product-version',
    '{git-describe}-x',
  ]);
  assert.equal(clean.productInfo.commit_hash, head);
  assert.match(head, /^[0-9a-f]{40}$/);
  assert.equal(clean.productInfo.commit_date, '2025-05-08T18:26:46+00:00');
  assert.equal(clean.productInfo.build_tree_dirty, false);
  assert.equal(clean.productInfo.version, 'v1.2.0-x');
  assert.deepEqual(clean.manifest.annotations, {
    'org.opencontainers.image.revision': head,
    'org.opencontainers.image.source': 'https://git.example.com/acme/os.git',
    'org.opencontainers.image.created': '2025-05-08T18:26:46+00:00',
    'com.example.channel': 'stable',
  });
  assert.deepEqual(Object.keys(clean.manifest).at(-1), 'annotations', 'annotations are the last field');

  // An untracked file that is not ignored makes the tree dirty (git describe --dirty only sees tracked files).
  await writeFile(join(repo, 'new.txt'), 'untracked');
  const untracked = await build(repo, join(out, 'untracked'), ['--git', '--product-version', '{git-describe}']);
  assert.equal(untracked.productInfo.build_tree_dirty, true);
  assert.equal(untracked.productInfo.version, 'v1.2.0');
  assert.equal(untracked.manifest.annotations, undefined, 'no annotations unless asked for');

  // A changed tracked file: dirty, and describe says so.
  await appendFile(join(repo, '.gitignore'), 'new.txt\n');
  const tracked = await build(repo, join(out, 'tracked'), ['--git', '--product-version', '{git-describe}']);
  assert.equal(tracked.productInfo.build_tree_dirty, true);
  assert.equal(tracked.productInfo.version, 'v1.2.0-dirty');

  // Push wires the same flags; an explicit --annotation wins over --annotate-git.
  const reg = await startRegistryServer({ root: join(out, 'registry'), port: 0 });
  t.after(() => reg.close());
  const [pushed, outside, badAnnotation] = await Promise.all([
    runCli(
      [
        'push',
        `${reg.address}/rel/git:1`,
        '-p',
        'kernel.efi=kernel.efi',
        '--git',
        '--annotate-git',
        '--annotation',
        `org.opencontainers.image.source=https://example.com/os`,
        '--no-cache',
        '--json',
      ],
      { cwd: repo },
    ),
    // Outside a repository: a usage error that says so.
    runCli(['build', '-p', `kernel.efi=${join(repo, 'kernel.efi')}`, '-o', `oci:${join(out, 'none')}`, '--git'], {
      cwd: out,
      env: { GIT_CEILING_DIRECTORIES: out },
    }),
    runCli(['build', '-p', `kernel.efi=${join(repo, 'kernel.efi')}`, '-o', `oci:${join(out, 'none2')}`, '--annotation', 'novalue'], { cwd: out }),
  ]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const res = await fetch(`${reg.url}/v2/rel/git/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const manifest = (await res.json()) as any;
  assert.equal(manifest.annotations['org.opencontainers.image.revision'], head);
  assert.equal(manifest.annotations['org.opencontainers.image.source'], 'https://example.com/os');

  assert.equal(outside.code, 2, outside.stderr);
  assert.match(outside.stderr, /not inside a git repository/);
  assert.equal(badAnnotation.code, 2, badAnnotation.stderr);
});

test('provenance helpers: credentials are stripped from remote URLs, dates are RFC 3339 UTC', () => {
  assert.equal(stripUrlCredentials('https://x-access-token:ghs_abc@github.com/acme/os.git'), 'https://github.com/acme/os.git');
  assert.equal(stripUrlCredentials('https://github.com/acme/os'), 'https://github.com/acme/os');
  assert.equal(stripUrlCredentials('git@github.com:acme/os.git'), 'git@github.com:acme/os.git');
  assert.equal(stripUrlCredentials('ssh://git:pw@host:2222/os.git'), 'ssh://host:2222/os.git');
  assert.equal(rfc3339Utc(1746728806), '2025-05-08T18:26:46+00:00');
});
