import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, runCli, tempDir } from '../helpers/cli.js';

/** Environment that keeps every auth file inside `dir`. */
function isolated(dir: string): NodeJS.ProcessEnv {
  return { HOME: dir, DOCKER_CONFIG: join(dir, 'docker'), REGISTRY_AUTH_FILE: '', OCI_OS_USERNAME: '', OCI_OS_PASSWORD: '' };
}

test('login, logout, attach and referrers have --help with a description and examples', async () => {
  for (const command of ['login', 'logout', 'attach', 'referrers']) {
    const r = await runCli([command, '--help']);
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    assert.match(r.stdout, /^DESCRIPTION\n {2}\S/m, command);
    assert.match(r.stdout, /^ {2}--json +Format output as json\.$/m, `${command} takes --json`);
    const examples = r.stdout.slice(r.stdout.indexOf('\nEXAMPLES\n'));
    assert.ok(examples.length > 1, `${command} has examples`);
    assert.ok(examples.split(`oci-os ${command} `).length - 1 >= 2, `${command} has at least two examples:\n${examples}`);
  }
});

test('login, logout, attach and referrers: usage errors exit 2, as JSON with --json; logout --json reports', async (t) => {
  const home = await tempDir(t);
  const usage: Array<[string[], RegExp, string?]> = [
    [['attach', 'localhost:5000/x:1'], /--artifact-type/],
    [['referrers'], /missing argument REF/],
    [['login', 'ftp://example.com', '--password-stdin', '-u', 'x'], /ftp/, 'y'],
    [['logout', 'localhost:5000', 'extra'], /unexpected argument: extra/],
  ];
  for (const [args, message, input] of usage) {
    const text = await runCli(args, { env: isolated(home), input });
    assert.equal(text.code, 2, `${args.join(' ')}: ${text.stderr}`);
    assert.match(text.stderr, /^oci-os: error: /, args.join(' '));
    assert.match(text.stderr, message, args.join(' '));
    const json = await runCli([...args, '--json'], { env: isolated(home), input });
    assert.equal(json.code, 2, `${args.join(' ')} --json: ${json.stderr}`);
    const doc = JSON.parse(json.stdout) as { error: { code: string; message: string }; exitCode: number };
    assert.equal(doc.error.code, 'USAGE', args.join(' '));
    assert.equal(doc.exitCode, 2);
    assert.match(doc.error.message, message, args.join(' '));
  }
  // Not being logged in is no error; --json says what was (not) removed, and where from.
  const out = await runCli(['logout', 'localhost:5999', '--json'], { env: isolated(home) });
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), {
    registry: 'localhost:5999',
    file: join(home, 'docker', 'config.json'),
    key: 'localhost:5999',
    removed: false,
    stillIn: [],
  });
});

test('shell completion is generated and knows the commands', async (t) => {
  const home = await tempDir(t);
  const r = await runCli(['autocomplete', 'bash'], { env: { HOME: home, XDG_CACHE_HOME: join(home, '.cache') } });
  assert.equal(r.code, 0, r.stderr);
  const bash = await readFile(join(home, '.cache', 'oci-os', 'autocomplete', 'functions', 'bash', 'oci-os.bash'), 'utf8');
  for (const c of ['push', 'login', 'attach', 'referrers']) assert.match(bash, new RegExp(`\\b${c}\\b`), c);
  // Our commands start without the plugin; the tool's help still lists its command.
  const help = await runCli(['--help']);
  assert.match(help.stdout, /^ {2}autocomplete {2}/m);
});

test('--version prints the line oclif prints for it, without starting the CLI', async () => {
  const { Config } = await import('@oclif/core');
  const config = await Config.load(repoRoot);
  const r = await runCli(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${config.userAgent}\n`);
  // Anything more on the command line goes to oclif, which prints the same line.
  const viaOclif = await runCli(['--version', '--debug']);
  assert.equal(viaOclif.code, 0, viaOclif.stderr);
  assert.equal(viaOclif.stdout, r.stdout);
});

test('the CLI bundles are ASCII, so Node.js reads them as one-byte text', async () => {
  const bundles = (await readdir(join(repoRoot, 'dist', 'bundles'))).filter((f) => f.endsWith('.cjs')).map((f) => join('bundles', f));
  assert.ok(bundles.includes(join('bundles', 'image-build.cjs')), bundles.join());
  for (const name of ['oci-os.cjs', ...bundles]) {
    const text = await readFile(join(repoRoot, 'dist', name), 'utf8');
    const at = text.search(/[^\0-\x7f]/);
    assert.equal(at, -1, `${name}: ${JSON.stringify(text.slice(Math.max(0, at - 40), at + 10))}`);
  }
  // The escaped help text still reads as written.
  const r = await runCli(['copy', '--help']);
  assert.match(r.stdout, /copied verbatim \u2014 manifests/);
});

test("DEBUG still turns on oclif's own log, which starts without its package", async () => {
  const quiet = await runCli(['logout', '--help'], { env: { DEBUG: '' } });
  assert.doesNotMatch(quiet.stderr, /oclif/);
  const r = await runCli(['logout', '--help'], { env: { DEBUG: 'oclif:*' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /oclif:main process\.argv/);
});

test('a command named on the command line starts from a manifest of its own, the same as in the whole one', async () => {
  const whole = JSON.parse(await readFile(join(repoRoot, 'oclif.manifest.json'), 'utf8'));
  const ids = Object.keys(whole.commands);
  assert.ok(ids.includes('image:build') && ids.length > 10, ids.join());
  for (const id of ids) {
    const own = JSON.parse(await readFile(join(repoRoot, 'dist', 'launch', id.replaceAll(':', '-'), 'oclif.manifest.json'), 'utf8'));
    assert.deepEqual(own, { ...whole, commands: { [id]: whole.commands[id] } }, id);
    const r = await runCli([...id.split(':'), '--help']);
    assert.equal(r.code, 0, `${id}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`\\$ oci-os ${id.replaceAll(':', ' ')} `), id);
  }
  // A topic still knows all its commands; an unknown one in it is reported by our hook.
  const topic = await runCli(['image', '--help']);
  for (const c of ['build', 'index', 'unpack']) assert.match(topic.stdout, new RegExp(`image ${c}`), c);
  const bogus = await runCli(['image', 'bogus']);
  assert.equal(bogus.code, 2);
  assert.equal(bogus.stderr, 'oci-os: error: unknown command "image bogus"; see oci-os image --help\n');
});
