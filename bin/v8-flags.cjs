'use strict';
// V8 flags the CLI changes as it runs, each set back as the process exits.
//
// V8 takes compiled code from a cache only if it was made under flags that
// hash the same as its own. That holds for the code cache of Node.js's
// built-in modules, made with V8's defaults, as much as for the bundles'
// (code-cache.cjs, or Node's own compile cache). A flag set as the CLI
// started made every built-in module loaded after it compile from scratch:
// 11 ms of `inspect oci:DIR`, a quarter of loading undici. So a flag is set
// only when it starts to matter, once start-up has loaded its code, and the
// defaults are back before a cache is written at exit.

/** The flags set with setUntilExit, each with the ones that restore V8's defaults. */
const restoring = new Map();

/**
 * Sets `flag` (once) until the process exits; `defaults` sets back every
 * flag it changed, the ones V8 changes with it included (on Node.js 20,
 * --liftoff-only turns off two kinds of WebAssembly tier-up as well).
 */
function setUntilExit(flag, defaults) {
  if (restoring.has(flag)) return;
  if (restoring.size === 0) process.once('exit', restoreDefaults);
  require('node:v8').setFlagsFromString(flag);
  restoring.set(flag, defaults);
}

/** Sets back what setUntilExit set (an exit handler registered before a cache's own calls it first). */
function restoreDefaults() {
  for (const defaults of restoring.values()) require('node:v8').setFlagsFromString(defaults);
  restoring.clear();
}

module.exports = { setUntilExit, restoreDefaults };
