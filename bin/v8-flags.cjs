'use strict';
// V8 flags the CLI changes as it runs, each set back as the process exits.
//
// V8 takes compiled code from a cache only if it was made under flags that
// hash the same as its own. That holds for the code cache of Node.js's
// built-in modules, made with V8's defaults, as much as for the bundles'
// (code-cache.cjs). A flag set as the CLI started made every built-in module
// loaded after it compile from scratch: 11 ms of `inspect oci:DIR`, a quarter
// of loading undici. So a flag is set only when it starts to matter, once
// start-up has loaded its code; the bundles are compiled under V8's defaults
// whenever they load, and the defaults are back before their cache is written
// at exit. (Node's own compile cache, from 22.8, makes a module's cache as it
// compiles it.) A flag the user gave node is the user's: it is left alone.

/** The flags set with setUntilExit, each with the ones that restore V8's defaults. */
const restoring = new Map();
let restoresAtExit = false;

/** The names of the flags in `flags` (`--no-liftoff-only` and `--liftoff_only` name `liftoff-only`). */
const namesIn = (flags) => flags.split(/\s+/).map((f) => f.replace(/^--(no-)?/, '').replaceAll('_', '-'));

/** Whether the command line or NODE_OPTIONS sets any flag of `names`. */
function givenByUser(names) {
  const given = namesIn([...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '));
  return names.some((name) => given.some((g) => g === name || g.startsWith(`${name}=`)));
}

/**
 * Sets `flag` (once) until the process exits; `defaults` sets back every
 * flag it changed, the ones V8 changes with it included (on Node.js 20,
 * --liftoff-only turns off two kinds of WebAssembly tier-up as well).
 */
function setUntilExit(flag, defaults) {
  if (restoring.has(flag) || givenByUser(namesIn(`${flag} ${defaults}`))) return;
  if (!restoresAtExit) process.once('exit', restoreDefaults);
  restoresAtExit = true;
  require('node:v8').setFlagsFromString(flag);
  restoring.set(flag, defaults);
}

/** Sets back what setUntilExit set (an exit handler registered before a cache's own calls it first). */
function restoreDefaults() {
  for (const defaults of restoring.values()) require('node:v8').setFlagsFromString(defaults);
  restoring.clear();
}

/** Runs `compile` under V8's default flags, then sets back what setUntilExit set: for code whose cache a start compares. */
function withDefaults(compile) {
  if (restoring.size === 0) return compile();
  const set = new Map(restoring);
  restoreDefaults();
  try {
    return compile();
  } finally {
    for (const [flag, defaults] of set) setUntilExit(flag, defaults);
  }
}

module.exports = { setUntilExit, restoreDefaults, withDefaults };
