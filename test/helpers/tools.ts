import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/** Whether an external program is on PATH. */
export function hasTool(name: string): boolean {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Makes a test depend on external programs. Outside CI a missing program
 * skips the test (and says which); under CI=true it fails the test, because
 * CI installs every tool the suite needs and a skip there would hide work.
 * Returns false when the test was skipped and must return at once.
 */
export function requireTools(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((n) => !hasTool(n));
  if (missing.length === 0) return true;
  const msg = `missing tools: ${missing.join(', ')} (install the Debian packages .ci/run installs)`;
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(msg);
  t.skip(msg);
  return false;
}
