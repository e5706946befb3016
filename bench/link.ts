/**
 * Link benchmark (`npm run bench -- link`, root only): oci-os against skopeo
 * on a shaped link, in a network namespace this section makes and removes:
 *
 *   ip netns add NAME; ip -n NAME link set lo up
 *   tc -n NAME qdisc add dev lo root tbf rate 400mbit burst 256kb latency 50ms
 *
 * and the CNCF registry (`docker-registry serve`) on 127.0.0.1 inside it.
 * Both directions of loopback traffic leave through `lo`, so requests and
 * answers share the one shaped queue, as on a real uplink. tbf parameters:
 * the rate is the limit under test (BENCH_LINK_RATE, default 400mbit); the
 * bucket must hold what arrives in one timer tick (400 Mbit/s over a 4 ms
 * tick of a HZ=250 kernel is 200 KB) and at least one loopback packet (MTU
 * 64 KiB), else tbf cannot reach its rate: 256 KB; `latency 50ms` bounds the
 * queue (about 2.5 MB at this rate), deep enough that a sender's bursts are
 * queued rather than dropped, short enough that the queue does not hide
 * idle gaps of the sender.
 *
 * Measured side by side, in turn, BENCH_LINK_RUNS times (default 3),
 * medians reported with wall and CPU seconds:
 * - `push --from` a layout against `skopeo copy oci:… docker://…`;
 * - `pull` against `skopeo copy docker://… oci:…`;
 * - one-pass `push -p` (build + upload) against skopeo pushing the
 *   pre-built layout.
 * The payload is BENCH_LINK_MIB MiB (default 2048) of mixed data, which
 * compresses to a layout of about 1 GiB, or the file BENCH_LINK_PAYLOAD
 * (generating 2 GiB takes minutes on a busy machine).
 *
 * BENCH_LINK_ONLY picks comparisons (a comma list of `push-from`, `pull`,
 * `push-p`; default all). BENCH_LINK_RATE=off leaves the loopback unshaped:
 * the same pairs then measure CPU-bound loopback transfers, e.g.
 * `BENCH_LINK_RATE=off BENCH_LINK_ONLY=pull BENCH_LINK_RUNS=5` for pull
 * against skopeo on loopback with a payload that fits a few minutes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dockerRegistryConfig, dockerRegistryEnv } from '../test/helpers/docker-registry.js';
import { makeMixedFile, mib, type Timed, timed } from './util.js';

const RATE = process.env.BENCH_LINK_RATE ?? '400mbit';
const RUNS = Number(process.env.BENCH_LINK_RUNS ?? 3);
const PAYLOAD_MIB = Number(process.env.BENCH_LINK_MIB ?? 2048);
/** `off`: no shaping, plain loopback. */
const SHAPED = RATE !== 'off';
const ONLY = new Set((process.env.BENCH_LINK_ONLY ?? 'push-from,pull,push-p').split(',').map((s) => s.trim()));
/** No single command may run longer than this: a hung run fails the section instead of the machine's evening. */
const LIMIT_MS = 600_000;
const PORT = 5000;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

/** Why the section cannot run here, or undefined. */
function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (it makes a network namespace and shapes its loopback)';
  for (const tool of ['ip', 'tc', 'skopeo', 'docker-registry']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool} on PATH`;
  }
  return undefined;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function dirSize(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size;
  }
  return n;
}

/** Starts the registry inside the namespace and waits until it answers. */
async function startRegistry(ns: string, dir: string): Promise<ChildProcess> {
  const config = join(dir, 'registry.yml');
  await mkdir(join(dir, 'storage'), { recursive: true });
  await writeFile(config, dockerRegistryConfig({ rootDir: join(dir, 'storage'), addr: `127.0.0.1:${PORT}`, logLevel: 'error' }));
  const proc = spawn('ip', ['netns', 'exec', ns, 'docker-registry', 'serve', config], { env: dockerRegistryEnv(), stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const probe = spawnSync('ip', [
      'netns',
      'exec',
      ns,
      process.execPath,
      '-e',
      `fetch('http://127.0.0.1:${PORT}/v2/').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))`,
    ]);
    if (probe.status === 0) return proc;
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error('the registry in the namespace did not start');
}

interface Pair {
  ours: Timed[];
  theirs: Timed[];
}

function summary(name: string, p: Pair, limit: number): Record<string, unknown> {
  const o = median(p.ours.map((t) => t.seconds));
  const s = median(p.theirs.map((t) => t.seconds));
  return {
    [`oci-os ${name} (s, median of ${p.ours.length})`]: +o.toFixed(2),
    'skopeo (s, median)': +s.toFixed(2),
    'oci-os runs (s)': p.ours.map((t) => +t.seconds.toFixed(2)).join(' '),
    'skopeo runs (s)': p.theirs.map((t) => +t.seconds.toFixed(2)).join(' '),
    'CPU s, oci-os / skopeo (median)': `${median(p.ours.map((t) => t.cpuSeconds!)).toFixed(2)} / ${median(p.theirs.map((t) => t.cpuSeconds!)).toFixed(2)}`,
    'oci-os peak RSS (max)': mib(Math.max(...p.ours.map((t) => t.peakRss ?? 0))),
    [SHAPED ? `ratio at ${RATE} (want <= ${limit})` : `ratio on loopback (want <= ${limit})`]: +(o / s).toFixed(3),
  };
}

export async function benchLink(dir: string): Promise<Record<string, unknown>> {
  const why = missing();
  if (why) {
    console.error(`bench link: skipped: ${why}`);
    return { skipped: why };
  }
  const ns = `ocios-link-${process.pid}`;
  const work = await mkdtemp(join(dir, 'link-'));
  let registry: ChildProcess | undefined;
  const cleanup = (): void => {
    registry?.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', ns]);
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    if (SHAPED) run('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', RATE, 'burst', '256kb', 'latency', '50ms']);
    registry = await startRegistry(ns, work);
    const host = `127.0.0.1:${PORT}`;
    const inNs = ['ip', 'netns', 'exec', ns];
    const home = join(work, 'home');
    const env = { OCI_OS_CACHE_DIR: join(work, 'cache') };
    const ours = (args: string[]) => timed('oci-os', args, { node: true, prefix: inNs, env, cpu: true, timeoutMs: LIMIT_MS });
    const skopeo = async (args: string[]) => {
      // A fresh HOME and no blob-info cache: skopeo must not turn uploads into mounts.
      await rm('/var/lib/containers/cache/blob-info-cache-v1.boltdb', { force: true });
      await rm(home, { recursive: true, force: true });
      await mkdir(home, { recursive: true });
      return timed('skopeo', ['--insecure-policy', 'copy', ...args], { prefix: inNs, env: { HOME: home }, cpu: true, timeoutMs: LIMIT_MS });
    };

    const payload = process.env.BENCH_LINK_PAYLOAD ?? join(work, 'payload.bin');
    if (!process.env.BENCH_LINK_PAYLOAD) await makeMixedFile(payload, PAYLOAD_MIB, 7);
    const payloadBytes = (await stat(payload)).size;
    const layout = join(work, 'layout');
    await timed('oci-os', ['build', '-p', `system=${payload}`, '-o', `oci:${layout}:1`], { node: true });
    const layoutBytes = await dirSize(layout);

    const pushFrom: Pair = { ours: [], theirs: [] };
    const pull: Pair = { ours: [], theirs: [] };
    const onePass: Pair = { ours: [], theirs: [] };
    const pulled = join(work, 'pulled');
    // Every pull reads the same image, pushed once before the runs.
    const pullFrom = `${host}/pull/src:1`;
    if (ONLY.has('pull')) await ours(['push', pullFrom, '--from', `oci:${layout}:1`, '--quiet']);
    for (let i = 0; i < RUNS; i++) {
      // In turn, the first side alternating, so that neither always gets the quieter moment.
      const pairs: Array<[string, Pair, () => Promise<Timed>, () => Promise<Timed>]> = [
        [
          'push-from',
          pushFrom,
          () => ours(['push', `${host}/from/o${i}:1`, '--from', `oci:${layout}:1`, '--quiet']),
          () => skopeo(['--dest-tls-verify=false', `oci:${layout}:1`, `docker://${host}/from/s${i}:1`]),
        ],
        [
          'pull',
          pull,
          async () => {
            await rm(pulled, { recursive: true, force: true });
            return ours(['pull', pullFrom, '-o', `oci:${pulled}:1`, '--quiet']);
          },
          async () => {
            await rm(pulled, { recursive: true, force: true });
            return skopeo(['--src-tls-verify=false', `docker://${pullFrom}`, `oci:${pulled}:1`]);
          },
        ],
        [
          'push-p',
          onePass,
          () => ours(['push', `${host}/onepass/o${i}:1`, '-p', `system=${payload}`, '--no-cache', '--quiet']),
          () => skopeo(['--dest-tls-verify=false', `oci:${layout}:1`, `docker://${host}/onepass/s${i}:1`]),
        ],
      ];
      for (const [name, pair, a, b] of pairs) {
        if (!ONLY.has(name)) continue;
        if (i % 2 === 0) {
          pair.ours.push(await a());
          pair.theirs.push(await b());
        } else {
          pair.theirs.push(await b());
          pair.ours.push(await a());
        }
      }
    }
    await rm(pulled, { recursive: true, force: true });
    const out: Record<string, unknown> = {
      link: SHAPED ? `tbf ${RATE} burst 256kb latency 50ms on lo of netns ${ns}` : `unshaped lo of netns ${ns}`,
      payload: mib(payloadBytes),
      layout: mib(layoutBytes),
    };
    if (ONLY.has('push-from')) out['push --from layout vs skopeo copy oci: docker://'] = summary('push --from', pushFrom, 1.02);
    // On loopback the target is the 0.9 of skopeo's time; on the shaped link, 1.02.
    if (ONLY.has('pull')) out['pull vs skopeo copy docker:// oci:'] = summary('pull', pull, SHAPED ? 1.02 : 0.9);
    if (ONLY.has('push-p')) out['one-pass push -p vs skopeo pushing the pre-built layout'] = summary('push -p', onePass, 1.03);
    return out;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    cleanup();
    await rm(work, { recursive: true, force: true });
  }
}
