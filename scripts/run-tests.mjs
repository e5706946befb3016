// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Arguments filter the files by substring: `npm test -- layout registry`.

import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// The CLI runs from its bundle, and finds its commands through
// oclif.manifest.json: refresh both from what was just compiled.
const bundle = spawnSync(process.execPath, ['scripts/bundle.mjs'], { stdio: 'inherit' });
if (bundle.status !== 0) process.exit(bundle.status ?? 1);
const manifest = spawnSync(process.execPath, ['scripts/oclif-manifest.mjs'], { stdio: 'inherit' });
if (manifest.status !== 0) process.exit(manifest.status ?? 1);

const filters = process.argv.slice(2);
const files = walk('dist/test').filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The suite makes its own registries and credentials: the user's logins and
// auth files must not change what a test sees (or be sent to a test server).
const env = { ...process.env };
for (const name of Object.keys(env)) {
  if (/^(REGISTRY_|OCI_OS_)/.test(name) || name === 'DOCKER_CONFIG') delete env[name];
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
