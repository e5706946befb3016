import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath, tempDir } from '../helpers/cli.js';

/** Runs the CLI with a preload that reports, at exit, the pool size it was given and the process's thread count. */
async function threadsOf(dir: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ pool: string | undefined; threads: number }> {
  const probe = join(dir, 'probe.cjs');
  const report = join(dir, 'report.json');
  await writeFile(probe, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify({ pool: process.env.UV_THREADPOOL_SIZE, threads: require('node:fs').readdirSync('/proc/self/task').length })));\n`);
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', probe, cliPath, ...args], { env: { ...process.env, UV_THREADPOOL_SIZE: undefined, ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.equal(code, 0);
  return JSON.parse(await readFile(report, 'utf8')) as { pool: string | undefined; threads: number };
}

test('the CLI entry sizes libuv\'s thread pool to the cores before it starts, and keeps a size the user set', { skip: process.platform !== 'linux' && 'counts threads in /proc' }, async (t) => {
  const dir = await tempDir(t);
  const payload = join(dir, 'p.bin');
  await writeFile(payload, Buffer.alloc(300 * 1024, 7));
  // A build reads and writes files, so the pool has started by the end.
  const args = (n: number) => ['build', '-p', `system=${payload}`, '-o', `oci:${join(dir, `out${n}`)}:1`, '-q'];
  const expected = Math.min(4, Math.max(2, availableParallelism()));
  const chosen = await threadsOf(dir, args(1), {});
  assert.equal(chosen.pool, String(expected));
  const eight = await threadsOf(dir, args(2), { UV_THREADPOOL_SIZE: '8' });
  assert.equal(eight.pool, '8', 'a size the user set is kept');
  // The setting took effect: the pool really has `expected` threads, not libuv's default 4.
  assert.equal(eight.threads - chosen.threads, 8 - expected, `threads: ${chosen.threads} with the chosen size, ${eight.threads} with 8`);
});
