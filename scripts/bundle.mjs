// Bundles the CLI into CommonJS files: dist/oci-os.cjs, what every start
// needs (@oclif/core and its dependencies, the command_not_found hook), and
// one per command in dist/bundles/, the command with the cli/ and library
// code it uses, read only when that command runs (not for --version or
// --help). Run after tsc, from its output (dist/), so the bundles hold
// exactly the code the tests check.
//
// Why bundle: on Node 20 (no compile cache) start-up time went to finding,
// reading and compiling files, not to running them. @oclif/core alone is
// ~190 CommonJS files (47 of them semver) and the commands another ~60 ES
// modules; as one file the same code starts about three times faster (see
// `npm run bench -- startup`). Why not lazy imports in the sources alone: the
// cost was in oclif, whose index loads all of it, and which we do not edit.
//
// What stays out, loaded from node_modules when first used: native addons
// (@mongodb-js/zstd) and undici, both loaded through createRequire() in
// src/, and @oclif/plugin-autocomplete, an oclif plugin that oclif loads from
// its own package when `autocomplete` runs.
//
// oclif finds the commands through the explicit command strategy
// (package.json oclif.commands: target dist/oci-os.cjs, identifier COMMANDS),
// whose getters load a command's bundle when oclif asks for that command.

import * as childProcess from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
export const bundlePath = join(dist, 'oci-os.cjs');

/** Compiled command files, as oclif's default (pattern) discovery finds them: id from the path, `index` names its folder. */
function commandFiles(dir = join(dist, 'commands')) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...commandFiles(p));
    else if (name.endsWith('.js')) out.push(p);
  }
  return out;
}

const commands = commandFiles().map((file) => {
  const parts = relative(join(dist, 'commands'), file).slice(0, -'.js'.length).split(sep);
  if (parts.at(-1) === 'index') parts.pop();
  return { id: parts.join(':'), file };
});
if (commands.length === 0) throw new Error('no compiled commands in dist/commands: run tsc first');

const req = (file) => JSON.stringify('./' + relative(dist, file).split(sep).join('/'));
/** A command's bundle, by its id: dist/bundles/image-build.cjs for `image build`. */
const bundleName = (id) => `${id.replaceAll(':', '-')}.cjs`;
// The start-up bundle: oclif, what starts it and the command_not_found hook.
// Its commands are getters that load a command's bundle, parsed only when
// that command runs (`--version` and `--help` never compile commands' code).
const entry = `'use strict';
const COMMANDS = {};
for (const [id, file] of ${JSON.stringify(commands.map((c) => [c.id, `./bundles/${bundleName(c.id)}`]))}) {
  Object.defineProperty(COMMANDS, id, { enumerable: true, get: () => require(file).default });
}
exports.COMMANDS = COMMANDS;
exports.commandNotFound = function (options) {
  return require(${req(join(dist, 'cli', 'not-found.js'))}).default.call(this, options);
};
exports.oclif = require('@oclif/core');
exports.launch = (root, pjson, argv) => require(${req(join(dist, 'cli', 'launch.js'))}).launch(root, pjson, Object.keys(COMMANDS), argv);
`;
// The commands' bundles share the start-up bundle's oclif.
const sharedOclif = {
  name: 'shared-oclif',
  setup(b) {
    b.onResolve({ filter: /^@oclif\/core$/ }, () => ({ path: '@oclif/core', namespace: 'shared-oclif' }));
    b.onLoad({ filter: /.*/, namespace: 'shared-oclif' }, () => ({ contents: "module.exports = require('../oci-os.cjs').oclif;", loader: 'js' }));
  },
};

/**
 * Modules oclif loads as it starts, each bundled behind a stand-in that loads
 * it only when it is used (about 10 ms of every start):
 * - tinyglobby, with which oclif finds command files by pattern; ours are
 *   listed (the explicit strategy), so no command of ours uses it;
 * - debug, through which oclif's log prints when DEBUG names it: without
 *   DEBUG every debug() it makes is a no-op;
 * - supports-color (and with it tty), read when oclif colors its output;
 *   readline, with which it reads a flag's value from standard input; and
 *   perf_hooks, for its own timings, on only when asked for;
 * - child_process, which oclif runs only to find the shell on Windows, and
 *   wsl-utils, from which it needs isWsl at every start (is-wsl's answer,
 *   kept) but which loads child_process twice over as it starts.
 * A stand-in by property (`later`) serves modules whose users read their
 * properties only when they use them, as oclif's compiled code does.
 */
/** The is-wsl that wsl-utils, as oclif finds it, imports (wherever npm put either). */
function isWslOfWslUtils() {
  const wslUtils = createRequire(createRequire(join(root, 'package.json')).resolve('@oclif/core')).resolve('wsl-utils');
  return createRequire(wslUtils).resolve('is-wsl');
}
const later = (name) => `let loaded; module.exports = new Proxy({}, { get: (_, key) => (loaded ??= require(${JSON.stringify(name)}))[key] });`;
const lazyPackages = {
  tinyglobby: later('tinyglobby'),
  debug: `
    const quiet = () => Object.assign(() => {}, { enabled: false });
    module.exports = process.env.DEBUG ? require('debug') : Object.assign(quiet, { enable() {}, disable: () => '', enabled: () => false });`,
  'supports-color': later('supports-color'),
  'node:readline': later('node:readline'),
  'node:perf_hooks': later('node:perf_hooks'),
  'node:child_process': later('node:child_process'),
  'wsl-utils': `
    export { default as isWsl } from ${JSON.stringify(isWslOfWslUtils())};
    export const powerShellPath = (...args) => require('wsl-utils').powerShellPath(...args);`,
};
/** Bundles packages behind the stand-ins given (name → the stand-in's source). */
const standIns = (packages) => ({
  name: 'stand-ins',
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(packages).join('|')})$`);
    b.onResolve({ filter }, (args) => (args.pluginData === 'stand-in' ? undefined : { path: args.path, namespace: 'lazy', pluginData: args.resolveDir }));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents: packages[args.path],
      resolveDir: args.pluginData,
      loader: 'js',
      pluginData: 'stand-in',
    }));
  },
});

/**
 * Every command may spawn a program (a credential helper, getfattr, zstd,
 * git), most of them only sometimes, and child_process takes 5-7 ms to load
 * (with dgram and net). Its functions stand in for it in the commands'
 * bundles, as ES module exports that our sources import by name, each with
 * the real one's util.promisify form (exec and execFile resolve to
 * { stdout, stderr }); a class (ChildProcess) is not among them, and
 * importing one fails the build.
 */
const childProcessFunctions = Object.entries(childProcess)
  .filter(([key, value]) => /^[a-z]/.test(key) && typeof value === 'function')
  .map(([key]) => key);
const commandStandIns = {
  'node:child_process': childProcessFunctions
    .map(
      (key) => `export function ${key}(...args) { return require('node:child_process').${key}(...args); }
Object.defineProperty(${key}, Symbol.for('nodejs.util.promisify.custom'), { get: () => require('node:child_process').${key}[Symbol.for('nodejs.util.promisify.custom')] });`,
    )
    .join('\n'),
};

/**
 * import.meta.url of a bundled module, as if it had not been bundled: its
 * file under dist/, where it still is. src/ finds its worker scripts and
 * createRequire()s undici and zstd relative to it.
 */
const importMetaUrl = {
  name: 'import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(dist + sep)) return undefined;
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return undefined;
      const rel = JSON.stringify(relative(dist, args.path).split(sep).join('/'));
      return { contents: source.replaceAll('import.meta.url', `__importMetaUrlOf(${rel})`), loader: 'js' };
    });
  },
};

/**
 * Each bundle is a CommonJS module whose code is a function expression that
 * it calls at once: Node.js wraps a module's text in such a function
 * (exports, require, module, __filename, __dirname) before compiling it, and
 * so does the code cache of bin/code-cache.cjs. With the function written
 * into the file, that cache compiles the file's own text up to the call (a
 * slice, which V8 reads where it lies) instead of a joined copy that V8 first
 * flattens: a copy of each bundle less, some 115 fresh pages of memory per
 * start. Node.js itself runs the file as any other module. The closing line
 * is code-cache.cjs's, which looks for it.
 */
const wrapper = {
  head: '(function (exports, require, module, __filename, __dirname) {',
  tail: createRequire(import.meta.url)('../bin/code-cache.cjs').CALL,
};
/** import.meta.url's helper, defined before any module, where `require` is still Node's (a module may declare its own); `up` leads from the bundle's folder to dist/. */
const bannerOf = (up) => ({
  js: `${wrapper.head}
const __importMetaUrlOf = (file) => require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(up)}, file)).href;`,
});
const footer = { js: wrapper.tail };

const options = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Class and function names stay as written (their `name`): errors and logs show them.
  keepNames: true,
  // Less text for Node to read and V8 to parse; the source maps still lead --debug to the
  // sources. Short local names took 27 % off the start-up bundle (504 to 366 KB) and 4-7 ms off
  // every start (less text to read, less for V8's young generation to hold); what they cost is the
  // class names of receivers in --debug stack traces (`i.run` for `Inspect.run`), whose file and
  // line the source maps still give.
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: true,
  sourcemap: 'linked',
  sourcesContent: false,
  external: ['@mongodb-js/zstd', 'undici', '@oclif/plugin-autocomplete', './bundles/*', '../oci-os.cjs'],
  logLevel: 'warning',
  metafile: true,
};
const bundles = join(dist, 'bundles');
const results = await Promise.all([
  build({
    ...options,
    stdin: { contents: entry, resolveDir: dist, sourcefile: 'oci-os-entry.cjs', loader: 'js' },
    outfile: bundlePath,
    banner: bannerOf('.'),
    footer,
    plugins: [standIns(lazyPackages), importMetaUrl],
  }),
  // One per command, so that a command reads and compiles only its own code
  // (inspect: 240 of the 590 KB all commands take). Code they share is in
  // each of them; a process runs one command.
  build({
    ...options,
    entryPoints: Object.fromEntries(commands.map((c) => [bundleName(c.id).slice(0, -'.cjs'.length), c.file])),
    outdir: bundles,
    outExtension: { '.js': '.cjs' },
    banner: bannerOf('..'),
    footer,
    plugins: [sharedOclif, standIns(commandStandIns), importMetaUrl],
  }),
]);
// BUNDLE_META=FILE: what went into the bundles, for esbuild's analyzer.
if (process.env.BUNDLE_META)
  writeFileSync(
    process.env.BUNDLE_META,
    JSON.stringify({
      inputs: Object.assign({}, ...results.map((r) => r.metafile.inputs)),
      outputs: Object.assign({}, ...results.map((r) => r.metafile.outputs)),
    }),
  );
if (results.some((r) => r.errors.length)) process.exit(1);

// ASCII only. esbuild escapes what it can, but not the text of tagged
// templates (the help texts' prose``) or of regular expressions. One such
// character makes Node.js read the whole bundle as UTF-16: twice the memory,
// a slower read and a slower parse (about 10 ms of every start, see
// `npm run bench -- startup`). A \u escape means the same character in a
// string, a template's cooked text (all prose`` reads) and a regular
// expression; only a template's raw text would differ (String.raw), and a
// character that follows a backslash (both checked below). Source map
// columns after an escape on its line shift by a few places; only --debug
// reads them.
for (const file of [
  bundlePath,
  ...readdirSync(bundles)
    .filter((f) => f.endsWith('.cjs'))
    .map((f) => join(bundles, f)),
]) {
  const text = readFileSync(file, 'utf8');
  if ((text.match(/String\.raw`[^`]*`/g) ?? []).some((t) => /[^\0-\x7f]/.test(t))) throw new Error(`${file}: escaping would change a String.raw text`);
  // After a backslash the escape would be read as an escaped backslash and text.
  if (/\\[^\0-\x7f]/.test(text)) throw new Error(`${file}: a non-ASCII character follows a backslash; escaping would change it`);
  writeFileSync(
    file,
    text.replace(/[^\0-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  );
}
