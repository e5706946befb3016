import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { requireTools } from '../helpers/tools.js';

/**
 * Auth-file entries of the wrong shape are treated as absent, with one
 * warning line that names the file and the registry and never a value;
 * no command crashes on them.
 */
test('malformed auth-file entries are ignored with a warning, never a crash, in every lookup', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry({ auth: 'htpasswd' });
  t.after(() => reg.stop());
  const root = await tempDir(t);
  const host = reg.host;
  const good = { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') };
  const secret = 'SeCrEtVaLuE';
  let n = 0;
  /** Writes the two auth files (REGISTRY_AUTH_FILE first, then $DOCKER_CONFIG/config.json) and runs the CLI with them. */
  const withFiles = async (authFile: unknown, dockerConfig: unknown, args: string[], input?: string) => {
    const dir = join(root, `case${n++}`);
    await mkdir(join(dir, 'docker'), { recursive: true });
    const env: NodeJS.ProcessEnv = {
      HOME: dir,
      DOCKER_CONFIG: join(dir, 'docker'),
      REGISTRY_AUTH_FILE: '',
      OCI_OS_USERNAME: '',
      OCI_OS_PASSWORD: '',
      PATH: process.env.PATH,
    };
    if (authFile !== undefined) {
      env.REGISTRY_AUTH_FILE = join(dir, 'auth.json');
      await writeFile(env.REGISTRY_AUTH_FILE, typeof authFile === 'string' ? authFile : JSON.stringify(authFile));
    }
    if (dockerConfig !== undefined) await writeFile(join(dir, 'docker', 'config.json'), JSON.stringify(dockerConfig));
    const r = await runCli(args[0] === 'logout' ? args : [...args, '--retries', '0'], { env, input });
    return { ...r, dir, env };
  };
  // Missing tag: 4 (not found) once credentials were sent, 3 when none were.
  const inspect = ['inspect', `${host}/os/none:1`];
  const checkWarning = (r: { stderr: string; stdout: string; dir: string }, file: string, what: RegExp, why: string): void => {
    assert.doesNotMatch(r.stderr, /Cannot read properties|TypeError|is not a function/, why);
    const lines = r.stderr.split('\n').filter((l) => /warning/.test(l));
    assert.equal(lines.length, 1, `${why}: one warning line\n${r.stderr}`);
    assert.ok(lines[0]!.includes(file), `${why}: the warning names the file: ${lines[0]}`);
    assert.ok(lines[0]!.includes(host), `${why}: the warning names the registry: ${lines[0]}`);
    assert.match(lines[0]!, what, why);
    assert.ok(!(r.stdout + r.stderr).includes(secret) && !(r.stdout + r.stderr).includes(reg.password!), `${why}: no secret printed`);
  };

  const absent: Array<[unknown, RegExp, string]> = [
    [{ auths: { [host]: null } }, /auths\["[^"]+"\] .*is null, not an object; ignored/, 'a null entry'],
    [{ auths: { [host]: { auth: 5 } } }, /\.auth .*is a number, not a string; ignored/, 'a numeric auth'],
    [{ auths: { [host]: { auth: [secret] } } }, /\.auth .*is an array, not a string; ignored/, 'an auth array'],
    [{ auths: { [`https://${host}`]: secret } }, /is a string, not an object; ignored/, 'an entry that is a string'],
    [{ auths: [secret] }, /"auths" is an array, not an object; ignored/, 'auths an array'],
    [{ auths: { [host]: { username: reg.username, password: 12345 } } }, /\.password .*is a number, not a string; ignored/, 'a numeric password'],
    [{ credHelpers: { [host]: 5 } }, /credHelpers\["[^"]+"\] .*is a number; ignored/, 'a numeric helper'],
    [{ credHelpers: { [host]: '../../bin/false' } }, /credHelpers\["[^"]+"\] .*is not a helper name; ignored/, 'a helper path'],
    [{ credHelpers: secret }, /"credHelpers" is a string, not an object; ignored/, 'credHelpers a string'],
    [{ credsStore: { name: secret } }, /"credsStore" is an object; ignored/, 'credsStore an object'],
    [{ credsStore: 7 }, /"credsStore" is a number; ignored/, 'credsStore a number'],
    [null, /is null, not a JSON object; ignored/, 'a file holding null'],
  ];
  for (const [cfg, what, why] of absent) {
    // Alone: treated as absent, so the registry gets no credentials (exit 3), and says so.
    const alone = await withFiles(cfg, undefined, inspect);
    assert.equal(alone.code, 3, `${why}: ${alone.stderr}`);
    checkWarning(alone, join(alone.dir, 'auth.json'), what, why);
    // In the first file, before a good one: the lookup goes on to the good one (exit 4: found no tag, but got in).
    const next = await withFiles(cfg, { auths: { [host]: good } }, [...inspect, '--json']);
    assert.equal(next.code, 4, `${why}, then a good file: ${next.stderr}${next.stdout}`);
    checkWarning(next, join(next.dir, 'auth.json'), what, `${why}, then a good file`);
  }
  // A field of the wrong type beside a good `auth`: the good part is used.
  const mixed = await withFiles(undefined, { auths: { [host]: { ...good, identitytoken: 1 } } }, inspect);
  assert.equal(mixed.code, 4, mixed.stderr);
  checkWarning(mixed, join(mixed.dir, 'docker', 'config.json'), /\.identitytoken .*is a number/, 'a numeric identitytoken');

  // login and logout read the same files: they store and remove, warn, and do not crash.
  const login = await withFiles(
    { auths: { [host]: null }, credsStore: 5 },
    undefined,
    ['login', host, '-u', reg.username!, '--password-stdin'],
    `${reg.password}\n`,
  );
  assert.equal(login.code, 0, login.stderr);
  checkWarning(login, join(login.dir, 'auth.json'), /"credsStore" is a number; ignored/, 'login');
  const stored = JSON.parse(await readFile(join(login.dir, 'auth.json'), 'utf8'));
  assert.equal(typeof stored.auths[host].auth, 'string', 'the login replaced the null entry');
  const logout = await withFiles({ auths: { [host]: good }, credHelpers: { [host]: 5 } }, undefined, ['logout', host]);
  assert.equal(logout.code, 0, logout.stderr);
  checkWarning(logout, join(logout.dir, 'auth.json'), /credHelpers\["[^"]+"\] .*is a number; ignored/, 'logout');
  assert.equal(JSON.parse(await readFile(join(logout.dir, 'auth.json'), 'utf8')).auths[host], undefined);
});
