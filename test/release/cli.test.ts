import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, tempDir } from '../helpers/cli.js';

test('login, logout, attach and referrers have --help with examples; usage errors exit 2', async () => {
  const results = await Promise.all(['login', 'logout', 'attach', 'referrers'].map((c) => runCli([c, '--help'])));
  for (const [i, r] of results.entries()) {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /EXAMPLES/, `command ${i}`);
    assert.match(r.stdout, /--json/, `command ${i}`);
  }
  const missing = await runCli(['attach', 'localhost:5000/x:1']);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /artifact-type/);
  const badHost = await runCli(['login', 'ftp://example.com', '--password-stdin', '-u', 'x'], { input: 'y' });
  assert.equal(badHost.code, 2, badHost.stderr);
});

test('shell completion is generated and knows the commands', async (t) => {
  const home = await tempDir(t);
  const r = await runCli(['autocomplete', 'bash'], { env: { HOME: home, XDG_CACHE_HOME: join(home, '.cache') } });
  assert.equal(r.code, 0, r.stderr);
  const bash = await readFile(join(home, '.cache', 'oci-os', 'autocomplete', 'functions', 'bash', 'oci-os.bash'), 'utf8');
  for (const c of ['push', 'login', 'attach', 'referrers']) assert.match(bash, new RegExp(`\\b${c}\\b`), c);
});
