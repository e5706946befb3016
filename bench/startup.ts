/**
 * Start-up benchmark: `oci-os --version` and `oci-os inspect oci:DIR` (a
 * small OS image), each against bare `node -e 0` in the same run. The three
 * take turns, so a machine that gets busier part-way slows all of them.
 * Reports the median wall time of each and the mean CPU time (user+sys,
 * from the kernel's account of reaped children: steadier than wall time on
 * a busy machine), and the difference to bare Node. The goal is 80 ms.
 * BENCH_STARTUP_RUNS sets the number of runs (default 40).
 * Section `startup` of `npm run bench`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli } from './util.js';

/** CPU seconds (user+sys) of this process's reaped children so far; undefined off Linux. */
function childrenCpu(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // The fields after the command name (in parentheses, may hold spaces): cutime and cstime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // In clock ticks, 100 a second on Linux (USER_HZ).
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return undefined;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const ms = (s: number) => Math.round(s * 10000) / 10;

/** One run: wall seconds and CPU seconds. */
function run(args: string[]): { wall: number; cpu: number | undefined } {
  const cpu0 = childrenCpu();
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu1 = childrenCpu();
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return { wall, cpu: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0 };
}

/** Runs the benchmark in `dir` (a few hundred KiB of scratch space). */
export async function benchStartup(dir: string): Promise<Record<string, unknown>> {
  const runs = Number(process.env.BENCH_STARTUP_RUNS ?? 40);
  const payload = join(dir, 'startup-payload.bin');
  await writeFile(payload, Buffer.alloc(256 * 1024, 1));
  const image = `oci:${join(dir, 'startup-layout')}:1`;
  run([cli, 'build', '-p', `system=${payload}`, '-o', image, '-q']);

  const cases = { node: ['-e', '0'], '--version': [cli, '--version'], 'inspect oci:DIR': [cli, 'inspect', image] };
  const walls: Record<string, number[]> = {};
  const cpus: Record<string, number | undefined> = {};
  // A first round each, not counted: files into the page cache.
  for (const args of Object.values(cases)) run(args);
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(cases)) {
      const r = run(args);
      (walls[name] ??= []).push(r.wall);
      cpus[name] = r.cpu === undefined || (name in cpus && cpus[name] === undefined) ? undefined : (cpus[name] ?? 0) + r.cpu;
    }
  }
  const base = { wall: median(walls.node!), cpu: cpus.node === undefined ? undefined : cpus.node / runs };
  const out: Record<string, unknown> = {
    runs,
    'node -e 0': { medianMs: ms(base.wall), ...(base.cpu === undefined ? {} : { cpuMs: ms(base.cpu) }) },
  };
  for (const name of ['--version', 'inspect oci:DIR']) {
    const wall = median(walls[name]!);
    const cpu = cpus[name] === undefined ? undefined : cpus[name]! / runs;
    out[name] = {
      medianMs: ms(wall),
      overNodeMs: ms(wall - base.wall),
      ...(cpu === undefined || base.cpu === undefined ? {} : { cpuMs: ms(cpu), cpuOverNodeMs: ms(cpu - base.cpu) }),
    };
  }
  return out;
}
