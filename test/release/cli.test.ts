import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, tempDir } from '../helpers/cli.js';
import Attach from '../../commands/attach.js';
import Login from '../../commands/login.js';
import Logout from '../../commands/logout.js';
import Referrers from '../../commands/referrers.js';

test('login, logout, attach and referrers have --help with examples and --json; usage errors exit 2', async () => {
  for (const C of [Login, Logout, Attach, Referrers]) {
    assert.ok((C.examples?.length ?? 0) >= 2, `${C.name} has examples`);
    assert.equal(C.enableJsonFlag, true, `${C.name} takes --json`);
    assert.ok(C.summary && C.description, `${C.name} is described`);
  }
  const [help, missing, badHost] = await Promise.all([
    runCli(['attach', '--help']),
    runCli(['attach', 'localhost:5000/x:1']),
    runCli(['login', 'ftp://example.com', '--password-stdin', '-u', 'x'], { input: 'y' }),
  ]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /EXAMPLES[\s\S]*oci-os attach /);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /artifact-type/);
  assert.equal(badHost.code, 2, badHost.stderr);
});

test('shell completion is generated and knows the commands', async (t) => {
  const home = await tempDir(t);
  const r = await runCli(['autocomplete', 'bash'], { env: { HOME: home, XDG_CACHE_HOME: join(home, '.cache') } });
  assert.equal(r.code, 0, r.stderr);
  const bash = await readFile(join(home, '.cache', 'oci-os', 'autocomplete', 'functions', 'bash', 'oci-os.bash'), 'utf8');
  for (const c of ['push', 'login', 'attach', 'referrers']) assert.match(bash, new RegExp(`\\b${c}\\b`), c);
});
