#!/usr/bin/env node
// A CommonJS entry on purpose: its first lines run before anything has used
// libuv's thread pool (an ES module entry is itself read through the pool),
// so the pool's size can still be chosen here.
'use strict';
const os = require('node:os');
const module_ = require('node:module');

if (!printedVersionAlone()) runCli();

/**
 * `oci-os --version` is what scripts run to probe the tool, and its answer is
 * all in package.json: it is printed here, as oclif prints it (its user
 * agent), without loading the CLI (a tenth of a second). oclif calls the
 * platform "wsl" under the Windows Subsystem for Linux; where any sign of
 * that is present, oclif answers instead, so the line is always oclif's.
 */
function printedVersionAlone() {
  if (process.argv.length !== 3 || process.argv[2] !== '--version' || maybeWsl()) return false;
  const { name, version } = require('../package.json');
  const arch = os.arch() === 'ia32' ? 'x86' : os.arch();
  process.stdout.write(`${name}/${version} ${os.platform()}-${arch} node-${process.version}\n`);
  return true;
}

/** Whether this may be WSL, by the signs oclif's check (the is-wsl package) looks for. */
function maybeWsl() {
  if (process.platform !== 'linux') return false;
  if (/microsoft/i.test(os.release())) return true;
  const { existsSync, readFileSync } = require('node:fs');
  try {
    if (/microsoft/i.test(readFileSync('/proc/version', 'utf8'))) return true;
  } catch {}
  return existsSync('/proc/sys/fs/binfmt_misc/WSLInterop') || existsSync('/run/WSL');
}

/** Starts the CLI: sets up the runtime, then hands the command line to oclif. */
function runCli() {
  // The pool does file I/O and gzip (zstd has its own threads). Threads beyond
  // the cores only take turns, each with its own malloc arena: on 2 cores a pool
  // of 2 instead of the default 4 made `build` and zstd image layers 7-8%
  // faster with a third fewer page faults. A size the user set is kept.
  if (process.env.UV_THREADPOOL_SIZE === undefined) {
    process.env.UV_THREADPOOL_SIZE = String(Math.min(4, Math.max(2, os.availableParallelism())));
  }

  // undici parses HTTP with llhttp compiled to WebAssembly. Node.js 20's V8
  // recompiles the hot parser with its optimizing compiler on a background
  // thread, which briefly takes 20-35 MiB: most of what a push or pull peaks at
  // beyond its own buffers (one request to a registry: 98 instead of 64 MiB), and CPU
  // time a short command never earns back. The baseline code is enough for a
  // parser that only frames bodies: a pull took less CPU without the recompile.
  // undici compiles the parser on its first connection, after its first request
  // is made, which it announces: the flag is set then, once undici's modules
  // have loaded (v8-flags.cjs says why not sooner). The channel is one undici's
  // own NODE_DEBUG logging does not look at (it stays quiet when the connection
  // channels have listeners). V8 12 (Node.js 22) and newer tier up lazily and
  // gain nothing.
  if (Number.parseInt(process.versions.v8, 10) < 12) {
    const channels = require('node:diagnostics_channel');
    const requestCreated = 'undici:request:create';
    channels.subscribe(requestCreated, function liftoffOnly() {
      channels.unsubscribe(requestCreated, liftoffOnly);
      require('./v8-flags.cjs').setUntilExit('--liftoff-only', '--no-liftoff-only --wasm-tier-up --wasm-dynamic-tiering');
    });
  }

  // Compiled code is kept between runs (a faster start for every command):
  // code-cache.cjs keeps the bundles', and Node.js 22.8 and newer keep that of
  // the other modules (undici). The cache goes with the user's other caches, not
  // into TMPDIR, which scripts (and our tests) expect a command to leave as it
  // found it.
  const { homedir } = require('node:os');
  const { join, sep } = require('node:path');
  const cacheDir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'oci-os');
  // Stack traces (--debug, DEBUG=oci-os) name the source files and lines,
  // not places in the bundle; the maps are read only then.
  const sourceMaps = process.argv.includes('--debug') || /(^|,)oci-os/.test(process.env.DEBUG || '');
  if (sourceMaps) process.setSourceMapsEnabled(true);
  if (module_.enableCompileCache && !process.env.NODE_COMPILE_CACHE) module_.enableCompileCache(join(cacheDir, 'node-compile-cache'));
  if (!sourceMaps) {
    // Source maps are applied to what Node.js compiles itself, so with them the bundles are compiled as usual.
    const dist = join(__dirname, '..', 'dist');
    const isBundle = (file) => file.endsWith('.cjs') && (file === join(dist, 'oci-os.cjs') || file.startsWith(join(dist, 'bundles') + sep));
    require('./code-cache.cjs').cacheCompiledCode(join(cacheDir, 'v8-code-cache'), isBundle);
  }

  // The CLI is bundled (scripts/bundle.mjs): @oclif/core in one CommonJS file
  // instead of some 190 files to find, read and compile; each command in one
  // of its own, read only when that command runs. launch() reports a
  // command's errors and sets the exit code itself; a command that can never
  // end is reported here rather than passing for a success.
  const argv = process.argv.slice(2);
  require('./unsettled.cjs').exitIfUnsettled(loadCli().launch(join(__dirname, '..'), require('../package.json'), argv), argv);
}

/**
 * The start-up bundle. As it loads, oclif checks the Node.js version against
 * its own package's engines (>=18) with semver, a package it otherwise does
 * not need to load; ours (package.json engines) ask for more, and npm checks
 * them when installing. So that check is turned off while the bundle loads.
 */
function loadCli() {
  const variable = 'OCLIF_DISABLE_ENGINE_WARNING';
  if (process.env[variable] !== undefined) return require('../dist/oci-os.cjs');
  process.env[variable] = '1';
  try {
    return require('../dist/oci-os.cjs');
  } finally {
    delete process.env[variable];
  }
}
