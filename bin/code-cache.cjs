'use strict';
// Compiled code of the CLI's bundles, kept between runs. Without it every
// start parses and compiles the bundles again: about a third of the CPU time
// of `oci-os --version` (see `npm run bench -- startup`). V8's code cache,
// through node:vm: the first run compiles as usual and, as it exits, saves
// the code of every function it ran; later runs hand that to V8 instead of
// compiling. Node.js 22.8 and newer keep a compile cache of their own
// (run.cjs turns it on for the other modules), but save a module's code as
// it is compiled: its top level, without the functions a run goes on to
// compile. For the bundles this cache is the fuller one: `inspect oci:DIR`
// started 17 ms sooner on Node.js 22, 8 ms on 24.
//
// One cache file per bundle and Node.js version, which starts with what
// identifies the bundle's file as it was read (device, inode, size, length
// of its text, and modification and change times in nanoseconds; hashing
// the text would load node:crypto, a cost of its own): a rebuilt or
// reinstalled bundle never runs code compiled from an older one (V8 itself
// checks only the text's length), and its new code replaces the old file. So does code V8 rejects (a corrupt file). Written
// atomically, so commands running at the same time read a whole file or
// none; any error reading or writing one only means a slower start.
//
// Every installation (an npx run, a CI checkout) leaves files of its own, so
// whenever one is written the folder is swept of cache files no command has
// read for a month (a file still in use is only written again) and of
// temporary files a killed process left.

const { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { basename, dirname, join } = require('node:path');
const { constants, Script } = require('node:vm');
const { restoreDefaults, setUntilExit, withDefaults } = require('./v8-flags.cjs');

/** A short name for a path (FNV-1a), which keeps bundles of several installations apart. */
function hashOf(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The line that ends a bundle's function, and calls it with what Node.js passes a CommonJS module (scripts/bundle.mjs writes it). */
const CALL = '}).call(this, exports, require, module, __filename, __dirname);';

/** Compiles the CommonJS modules `isBundle` picks (by absolute path) with V8 code cached in `dir`, from now on. */
function cacheCompiledCode(dir, isBundle) {
  const compile = Module.prototype._compile;
  const unsaved = [];
  let flags;
  Module.prototype._compile = function (content, filename) {
    if (!isBundle(filename)) return compile.call(this, content, filename);
    const cacheFile = join(dir, `${basename(filename)}-${process.version}-${process.arch}-${hashOf(filename)}`);
    let cachedData;
    let hash;
    try {
      const s = statSync(filename, { bigint: true });
      // Fixed length, so the code that follows starts at a known offset.
      hash = Buffer.from(`${[s.dev, s.ino, s.size, content.length, s.mtimeNs, s.ctimeNs].join(' ')}\n`.padStart(128));
      const data = readFileSync(cacheFile);
      if (data.subarray(0, hash.length).equals(hash)) cachedData = data.subarray(hash.length);
    } catch {}
    // A bundle's text is a function expression that it calls at its end
    // (scripts/bundle.mjs): the function is compiled from the text itself,
    // without a copy. A file of another shape compiles as usual, uncached.
    const call = content.lastIndexOf(CALL);
    if (call < 0) return compile.call(this, content, filename);
    const script = withDefaults(
      () =>
        new Script(content.slice(0, call + 2), {
          filename,
          cachedData,
          importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
        }),
    );
    if (hash && (cachedData === undefined || script.cachedDataRejected)) {
      // The hash of the flags the bundles compile under (without the CLI's own), which the code
      // saved must match (node:v8 is loaded only by a run that saves: a millisecond of every start).
      flags ??= withDefaults(() => require('node:v8').cachedDataVersionTag());
      unsaved.push({ script, cacheFile, hash });
      // V8 drops the compiled code of functions a run has not used for a few
      // full collections, and a command that moves data runs many. A 22 s push
      // saved half the start-up code a short command does, and every later start
      // took that cache and compiled the rest again (30 ms more for inspect).
      // Only a run that saves a cache keeps all its code.
      setUntilExit('--no-flush-bytecode', '--flush-bytecode');
    }
    const fn = script.runInThisContext({ displayErrors: true });
    return fn.call(this.exports, this.exports, Module.createRequire(filename), this, filename, dirname(filename));
  };
  // At exit, so the cache holds every function this run compiled, not only the top level. With
  // V8's flags set back as they were (v8-flags.cjs), which a later start compares; not saved
  // when something else changed them for good: a start would reject it.
  process.once('exit', () => {
    restoreDefaults();
    if (unsaved.length === 0 || require('node:v8').cachedDataVersionTag() !== flags) return;
    sweep(dir, Date.now());
    for (const { script, cacheFile, hash } of unsaved) {
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(tmp, Buffer.concat([hash, script.createCachedData()]));
        renameSync(tmp, cacheFile);
      } catch {
        try {
          unlinkSync(tmp);
        } catch {}
      }
    }
  });
}

/** Names of the files this cache writes: BUNDLE-vNODE-ARCH-PATHHASH, and their temporaries. */
const cacheName = /^[\w.-]+\.cjs-v\d+\.\d+\.\d+-\w+-[0-9a-f]{8}(\.\d+\.tmp)?$/;
const DAY = 24 * 3600 * 1000;

/**
 * Removes the cache's files unread for 30 days (by access time, which Linux
 * updates at least daily on a file read, or its write time where access
 * times are off) and temporaries older than an hour. Files of other names
 * are left alone.
 */
function sweep(dir, now) {
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = cacheName.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    try {
      const s = statSync(path);
      const stale = m[1] ? now - s.mtimeMs > DAY / 24 : now - Math.max(s.atimeMs, s.mtimeMs) > 30 * DAY;
      if (stale) unlinkSync(path);
    } catch {}
  }
}

module.exports = { cacheCompiledCode, sweep, CALL };
