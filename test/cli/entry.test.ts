import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath, tempDir } from '../helpers/cli.js';

/** The CPUs this process may run on (its affinity), from /proc/self/status. */
async function allowedCpus(): Promise<number[]> {
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(await readFile('/proc/self/status', 'utf8'))?.[1] ?? '';
  return list.split(',').flatMap((range) => {
    const [from, to = from] = range.split('-').map(Number) as [number, number?];
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}

/**
 * Runs the CLI on `cpus` CPUs (taskset, which is what availableParallelism()
 * sees), with a preload that reports, at exit, the pool size it was given and
 * the process's thread count.
 */
async function threadsOf(dir: string, cpus: number[], args: string[], env: NodeJS.ProcessEnv): Promise<{ pool: string | undefined; threads: number }> {
  const probe = join(dir, 'probe.cjs');
  const report = join(dir, 'report.json');
  await writeFile(
    probe,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify({
    pool: process.env.UV_THREADPOOL_SIZE,
    threads: require('node:fs').readdirSync('/proc/self/task').length,
  })));\n`,
  );
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('taskset', ['-c', cpus.join(','), process.execPath, '--require', probe, cliPath, ...args], {
      env: { ...process.env, UV_THREADPOOL_SIZE: undefined, ...env },
      stdio: 'ignore',
    });
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.equal(code, 0);
  return JSON.parse(await readFile(report, 'utf8')) as { pool: string | undefined; threads: number };
}

test("the CLI entry sizes libuv's thread pool to the cores before it starts, and keeps a size the user set", {
  skip: process.platform !== 'linux' && 'counts threads in /proc',
}, async (t) => {
  const dir = await tempDir(t);
  const payload = join(dir, 'p.bin');
  await writeFile(payload, Buffer.alloc(300 * 1024, 7));
  // A build reads and writes files, so the pool has started by the end.
  let runs = 0;
  const args = () => ['build', '-p', `system=${payload}`, '-o', `oci:${join(dir, `out${++runs}`)}:1`, '-q'];
  const cpus = await allowedCpus();
  // Cores -> pool: at least 2, at most 4. Counts above what this machine has are left out.
  const cases: Array<[number, string]> = [
    [1, '2'],
    [2, '2'],
    [3, '3'],
    [4, '4'],
    [6, '4'],
    [16, '4'],
  ];
  for (const [cores, pool] of cases.filter(([n]) => n <= cpus.length)) {
    assert.equal((await threadsOf(dir, cpus.slice(0, cores), args(), {})).pool, pool, `${cores} core(s)`);
  }
  const one = cpus.slice(0, 1);
  const chosen = await threadsOf(dir, one, args(), {});
  const eight = await threadsOf(dir, one, args(), { UV_THREADPOOL_SIZE: '8' });
  assert.equal(eight.pool, '8', 'a size the user set is kept');
  // The setting took effect: the pool really has 2 threads on one core, not libuv's default 4.
  assert.equal(eight.threads - chosen.threads, 8 - 2, `threads: ${chosen.threads} with the chosen size, ${eight.threads} with 8`);
});
