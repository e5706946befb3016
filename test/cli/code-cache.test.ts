/**
 * The compiled-code cache the CLI keeps between runs (bin/code-cache.cjs for
 * the bundles; Node.js's own compile cache, from 22.8, for the other
 * modules): cache files no command
 * has read for a month, and temporaries a killed process left, are swept
 * whenever a new file is written; other files in the folder are not touched.
 * The code a run saved is taken by the next run; a run whose V8 flags
 * changed for good saves none. The CLI sets a V8 flag only once start-up has
 * loaded its code, and sets it back at exit (bin/v8-flags.cjs).
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath, repoRoot, runCli, runNode, tempDir } from '../helpers/cli.js';

const { sweep } = createRequire(join(repoRoot, 'package.json'))('./bin/code-cache.cjs') as { sweep(dir: string, now: number): void };
const DAY = 24 * 3600 * 1000;

/** A folder with cache files and temporaries of several ages, and one file of another name. */
async function agedFolder(dir: string, now: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: Array<[string, number]> = [
    ['inspect.cjs-v20.20.2-x64-0805475b', 40 * DAY],
    ['image-build.cjs-v20.19.0-x64-c1cad689', 29 * DAY],
    ['oci-os.cjs-v20.20.2-x64-f21d7b88.4242.tmp', 2 * 3600 * 1000],
    ['oci-os.cjs-v20.20.2-x64-f21d7b88.4243.tmp', 60 * 1000],
    ['notes.txt', 400 * DAY],
  ];
  for (const [name, age] of files) {
    await writeFile(join(dir, name), 'x');
    const t = new Date(now - age);
    await utimes(join(dir, name), t, t);
  }
}

test('sweep removes cache files unread for 30 days and temporaries older than an hour, nothing else', async (t) => {
  const dir = join(await tempDir(t), 'v8-code-cache');
  const now = Date.now();
  await agedFolder(dir, now);
  sweep(dir, now);
  assert.deepEqual((await readdir(dir)).sort(), ['image-build.cjs-v20.19.0-x64-c1cad689', 'notes.txt', 'oci-os.cjs-v20.20.2-x64-f21d7b88.4243.tmp']);
  // A file read recently counts as in use, however old its contents.
  await utimes(join(dir, 'image-build.cjs-v20.19.0-x64-c1cad689'), new Date(now - DAY), new Date(now - 90 * DAY));
  sweep(dir, now);
  assert.ok((await readdir(dir)).includes('image-build.cjs-v20.19.0-x64-c1cad689'));
  sweep(join(dir, 'missing'), now);
});

test('a command that writes the code cache sweeps its folder; Node.js 22.8 and newer keep a cache of their own beside it', async (t) => {
  const home = await tempDir(t);
  const dir = join(home, 'oci-os', 'v8-code-cache');
  const now = Date.now();
  await agedFolder(dir, now);
  // Source maps (DEBUG=oci-os) and a compile cache the environment names change which cache is kept.
  const env = { XDG_CACHE_HOME: home, NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined, DEBUG: undefined };
  const r = await runCli(['--help'], { env });
  assert.equal(r.code, 0, r.stderr);
  const names = await readdir(dir);
  if (typeof (createRequire(import.meta.url)('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function') {
    assert.ok((await readdir(join(home, 'oci-os'))).includes('node-compile-cache'), 'Node.js keeps the code of the other modules');
  }
  assert.ok(!names.includes('inspect.cjs-v20.20.2-x64-0805475b'), names.join());
  assert.ok(!names.includes('oci-os.cjs-v20.20.2-x64-f21d7b88.4242.tmp'), names.join());
  assert.ok(names.includes('notes.txt') && names.includes('image-build.cjs-v20.19.0-x64-c1cad689'), names.join());
  assert.ok(
    names.some((n) => n.startsWith(`oci-os.cjs-${process.version}-`)),
    `the start-up bundle's code was written: ${names.join()}`,
  );
});

test('code a run cached is taken by the next run, for the start-up bundle and a command', async (t) => {
  const home = await tempDir(t);
  const dir = join(home, 'oci-os', 'v8-code-cache');
  const env = { XDG_CACHE_HOME: home, NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined, DEBUG: undefined };
  // A command that fails after its bundle loaded (no such layout) still compiles both bundles.
  const args = ['inspect', `oci:${join(home, 'missing')}`];
  await runCli(args, { env });
  const written = async () => Object.fromEntries(await Promise.all((await readdir(dir)).map(async (n) => [n, (await stat(join(dir, n))).mtimeMs] as const)));
  const first = await written();
  assert.deepEqual(
    Object.keys(first)
      .map((n) => n.split('-v')[0])
      .sort(),
    ['inspect.cjs', 'oci-os.cjs'],
  );
  // Code V8 rejects (or a bundle compiled without the cache) would be written again.
  await runCli(args, { env });
  assert.deepEqual(await written(), first);

  // A run that saves one bundle's code keeps all it compiles (a V8 flag) but still takes the other's:
  // the bundles are compiled under V8's defaults.
  const startUp = Object.keys(first).find((n) => n.startsWith('oci-os.cjs'))!;
  await rm(join(dir, startUp));
  await runCli(args, { env });
  const third = await written();
  assert.deepEqual(Object.keys(third).sort(), Object.keys(first).sort());
  for (const [name, mtime] of Object.entries(third)) {
    if (name === startUp) assert.ok(mtime > first[name]!, 'the start-up bundle saved again');
    else assert.equal(mtime, first[name], `${name} was taken, not written again`);
  }
});

test('V8 flags the user gave node are left as they are, and the code cached under them is taken', async (t) => {
  const home = await tempDir(t);
  const dir = join(home, 'oci-os', 'v8-code-cache');
  const args = ['--no-flush-bytecode', cliPath, 'inspect', `oci:${join(home, 'missing')}`];
  const env = { XDG_CACHE_HOME: home, NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined, DEBUG: undefined };
  assert.equal((await runNode(args, { env })).code, 4);
  const names = await readdir(dir);
  assert.equal(names.length, 2, 'the flag was not set back: the flags at exit were those of the start');
  const mtimes = await Promise.all(names.map(async (n) => (await stat(join(dir, n))).mtimeMs));
  assert.equal((await runNode(args, { env })).code, 4);
  assert.deepEqual(await Promise.all(names.map(async (n) => (await stat(join(dir, n))).mtimeMs)), mtimes);
});

test('a run whose V8 flags changed as it ran saves no compiled code, which a start would reject', async (t) => {
  const home = await tempDir(t);
  // A flag changed for good, by code other than the CLI's own (which sets its flags back); this exit handler runs before the cache's.
  const preload = join(home, 'flags.cjs');
  await writeFile(preload, "process.once('exit', () => require('node:v8').setFlagsFromString('--expose-gc'));\n");
  const r = await runNode(['--require', preload, cliPath, 'inspect', `oci:${join(home, 'missing')}`], { env: { XDG_CACHE_HOME: home, DEBUG: undefined } });
  assert.equal(r.code, 4, r.stderr);
  assert.deepEqual(await readdir(join(home, 'oci-os', 'v8-code-cache')).catch(() => []), []);
  // The same run without the change saves both bundles' code.
  await runCli(['inspect', `oci:${join(home, 'missing')}`], { env: { XDG_CACHE_HOME: home, DEBUG: undefined } });
  assert.equal((await readdir(join(home, 'oci-os', 'v8-code-cache'))).length, 2);
});

/**
 * A preload that records, in `out`, every V8 flag set (with whether undici's
 * modules had loaded), each WebAssembly module compiled, and whether V8's
 * flags hashed at exit as at the start.
 */
async function flagRecorder(dir: string): Promise<{ preload: string; events: () => Promise<string[]> }> {
  const preload = join(dir, 'record-flags.cjs');
  const out = join(dir, 'flags.json');
  await writeFile(
    preload,
    `const v8 = require('node:v8');
const { writeFileSync } = require('node:fs');
const start = v8.cachedDataVersionTag();
const events = [];
const setFlags = v8.setFlagsFromString;
let dumping = false;
v8.setFlagsFromString = (flags) => {
  events.push(\`flag \${flags}\${process.moduleLoadList.includes('NativeModule http2') ? ' (undici loaded)' : ''}\`);
  // Registered now, it runs after the CLI's own exit handlers, which set flags back.
  if (!dumping) process.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify([...events, \`same flags at exit: \${v8.cachedDataVersionTag() === start}\`])));
  dumping = true;
  return setFlags(flags);
};
WebAssembly.Module = new Proxy(WebAssembly.Module, { construct: (target, args) => (events.push('WebAssembly compiled'), new target(...args)) });
`,
  );
  return { preload, events: async () => JSON.parse(await readFile(out, 'utf8').catch(() => '[]')) as string[] };
}

test('a command whose code is cached sets no V8 flag: the built-in modules it loads take their cached code', async (t) => {
  const home = await tempDir(t);
  const { preload, events } = await flagRecorder(home);
  const args = ['--require', preload, cliPath, 'inspect', `oci:${join(home, 'missing')}`];
  const env = { XDG_CACHE_HOME: home, NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined, DEBUG: undefined };
  // The first run writes the cache, keeping all the code it compiled until then.
  assert.equal((await runNode(args, { env })).code, 4);
  const first = await events();
  // Bytecode is kept while the run goes on (set back around each bundle's compile, and at exit).
  assert.equal(first.at(-1), 'same flags at exit: true');
  assert.deepEqual(
    first.slice(0, -1),
    first.slice(0, -1).map((_, i) => (i % 2 === 0 ? 'flag --no-flush-bytecode' : 'flag --flush-bytecode')),
  );
  assert.ok(first.length >= 3, first.join('; '));
  await rm(join(home, 'flags.json'), { force: true });
  assert.equal((await runNode(args, { env })).code, 4);
  assert.deepEqual(await events(), []);
});

test("--liftoff-only is set once undici's modules have loaded, before it compiles its parser, and set back at exit (V8 before 12)", async (t) => {
  const home = await tempDir(t);
  const { preload, events } = await flagRecorder(home);
  // A registry that has nothing: the command connects, and fails.
  const server = createServer((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const r = await runNode(['--require', preload, cliPath, 'inspect', `127.0.0.1:${port}/none:v1`], {
    env: { XDG_CACHE_HOME: home, DEBUG: undefined },
  });
  assert.equal(r.code, 4, r.stderr);
  const seen = (await events()).filter((e) => !/flush-bytecode/.test(e));
  // Newer V8s tier WebAssembly up lazily: the flag is not needed there (bin/run.cjs).
  const liftoff = Number.parseInt(process.versions.v8, 10) < 12;
  assert.deepEqual(seen, [
    ...(liftoff ? ['flag --liftoff-only (undici loaded)'] : []),
    'WebAssembly compiled',
    ...(liftoff ? ['flag --no-liftoff-only --wasm-tier-up --wasm-dynamic-tiering (undici loaded)'] : []),
    'same flags at exit: true',
  ]);
});
