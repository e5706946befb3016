/**
 * A command whose promise can never settle leaves the process nothing to
 * run: without bin/unsettled.cjs it would exit 0 in silence, as if it had
 * succeeded. These run the guard in a real process.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CliResult, repoRoot, runNode } from '../helpers/cli.js';

/** Runs `node -e SCRIPT ARGS` with the guard at hand as `guard`. */
function runGuarded(script: string, args: string[] = []): Promise<CliResult> {
  const prelude = `const guard = require(${JSON.stringify(join(repoRoot, 'bin', 'unsettled.cjs'))}).exitIfUnsettled;`;
  return runNode(['-e', `${prelude}\n${script}`, '--', ...args]);
}

test('a command left waiting on a promise that can never settle fails with one line', async () => {
  const r = await runGuarded('guard(new Promise(() => {}), process.argv.slice(1));');
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^oci-os: error: internal error: the command stopped before it finished[^\n]*\n$/);
});

test('with --json the same failure is the JSON error object', async () => {
  const r = await runGuarded('guard(new Promise(() => {}), process.argv.slice(1));', ['--json']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout) as { error: { code: string; message: string }; exitCode: number };
  assert.equal(out.error.code, 'INTERNAL');
  assert.match(out.error.message, /stopped before it finished/);
  assert.equal(out.exitCode, 1);
});

test('a command that ends, with work still queued after it, keeps its own exit code and output', async () => {
  const r = await runGuarded(`
    guard(new Promise((resolve) => setTimeout(resolve, 20)).then(() => { process.exitCode = 3; }), []);
    setTimeout(() => process.stdout.write('later\\n'), 60);
  `);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'later\n');
  assert.equal(r.stderr, '');
});
