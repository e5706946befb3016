// Bundles the CLI into one CommonJS file, dist/oci-os.cjs: @oclif/core and
// its dependencies, the commands, cli/ and the library code they use. Run
// after tsc, from its output (dist/), so the bundle holds exactly the code the
// tests check.
//
// Why a bundle: on Node 20 (no compile cache) start-up time went to finding,
// reading and compiling files, not to running them. @oclif/core alone is
// ~190 CommonJS files (47 of them semver) and the commands another ~60 ES
// modules; as one file the same code starts about three times faster (see
// `npm run bench startup`).
//
// What stays out, loaded from node_modules when first used: native addons
// (@mongodb-js/zstd) and undici, both loaded through createRequire() in
// src/, and @oclif/plugin-autocomplete, an oclif plugin that oclif loads from
// its own package when `autocomplete` runs.
//
// Inside the bundle each command, and the command_not_found hook, is wrapped
// so that its module (and the library code only it imports) is evaluated when
// oclif asks for that command: `--version` evaluates no command, `inspect`
// only inspect's code. oclif finds them through the explicit command
// strategy (package.json oclif.commands: target dist/oci-os.cjs, identifier
// COMMANDS).
import { build } from 'esbuild';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

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
const entry = `'use strict';
// Each command is a getter: a command's module is evaluated when oclif asks for it.
const COMMANDS = {};
${commands.map((c) => `Object.defineProperty(COMMANDS, ${JSON.stringify(c.id)}, { enumerable: true, get: () => require(${req(c.file)}).default });`).join('\n')}
exports.COMMANDS = COMMANDS;
exports.commandNotFound = function (options) {
  return require(${req(join(dist, 'cli', 'not-found.js'))}).default.call(this, options);
};
exports.execute = require('@oclif/core').execute;
`;

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

const result = await build({
  stdin: { contents: entry, resolveDir: dist, sourcefile: 'oci-os-entry.cjs', loader: 'js' },
  outfile: bundlePath,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Class and function names stay as written: errors and logs show them.
  keepNames: true,
  sourcemap: 'linked',
  sourcesContent: false,
  external: ['@mongodb-js/zstd', 'undici', '@oclif/plugin-autocomplete'],
  plugins: [importMetaUrl],
  // Defined before any module, where `require` is still Node's (a module may declare its own).
  banner: { js: "const __importMetaUrlOf = (file) => require('node:url').pathToFileURL(require('node:path').join(__dirname, file)).href;" },
  logLevel: 'warning',
  metafile: true,
});
// BUNDLE_META=FILE: what went into the bundle, for esbuild's analyzer.
if (process.env.BUNDLE_META) writeFileSync(process.env.BUNDLE_META, JSON.stringify(result.metafile));
if (result.errors.length) process.exit(1);
