/**
 * Writers killed outright (kill -9) mid-write cannot remove their own
 * temporary files. The next writer of the same layout or archive removes
 * those whose owner is gone, and the layout stays valid.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { buildImage, KiB } from '../cli/image-helpers.js';
import { cliPath, runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';

/** Bytes of the payload blob the proxy lets through before it stalls the download. */
const STALL_AFTER = 512 * KiB;

/** Names of the files in `dir` that start with `prefix` and hold at least `min` bytes (none when `dir` is missing). */
async function filesOf(dir: string, prefix: string, min = 0): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.filter((x) => x.startsWith(prefix)).sort()) {
    if (
      await stat(join(dir, n)).then(
        (s) => s.size >= min,
        () => false,
      )
    )
      out.push(n);
  }
  return out;
}

/** Names and sizes of every file below `dir`, for messages. */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listing(p)));
    else out.push(`${p} ${(await stat(p).catch(() => undefined))?.size}`);
  }
  return out;
}

/** Starts `oci-os ARGS`, waits until `writing()` says it is mid-write, kills it with SIGKILL and waits for it to end. */
async function killMidWrite(args: string[], writing: () => Promise<boolean>, look: string): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
  let ended = false;
  void closed.then(() => {
    ended = true;
  });
  try {
    for (let i = 0; i < 3000 && !ended && !(await writing()); i++) await sleep(10);
    assert.equal(ended, false, `${args[0]} ended before it was killed: ${stderr}`);
    assert.ok(await writing(), `${args[0]} did not get to write: ${stderr} ${JSON.stringify(await listing(look))}`);
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal((await closed).signal, 'SIGKILL');
}

/** The tags of a layout's index.json. */
async function tags(layout: string): Promise<string[]> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> };
  return index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '').sort();
}

test('pulls killed with SIGKILL mid-blob leave temporaries that the next writer of the layout or archive removes', { timeout: 180_000 }, async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);
  const smallRoot = join(root, 'small');
  const bigRoot = join(root, 'big');
  await mkdir(smallRoot);
  await mkdir(bigRoot);
  const small = await buildImage(smallRoot, { size: 64 * KiB });
  const big = await buildImage(bigRoot, { size: 2 * 1024 * KiB, compression: 'none', seed: 5 });
  for (const [img, tag] of [
    [small, 'small'],
    [big, 'big'],
  ] as const) {
    const up = await runCli(['copy', img.location, `${reg.host}/kill/os:${tag}`, '-q']);
    assert.equal(up.code, 0, up.stderr);
  }
  const system = big.payloads.find((p) => p.name === 'system')!;
  // Through the proxy the big payload's download hangs part-way: the pull is caught mid-write, every time.
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${system.digest}$`), times: Infinity, action: { type: 'stallResponse', afterBytes: STALL_AFTER } });
  const kills = 2;

  await t.test('layout', async () => {
    const layout = join(root, 'layout');
    const first = await runCli(['pull', `${reg.host}/kill/os:small`, '-o', `oci:${layout}:kept`, '-q']);
    assert.equal(first.code, 0, first.stderr);
    const tmp = join(layout, '.oci-os-tmp');
    const killed: string[] = [];
    for (let i = 0; i < kills; i++) {
      const seen = new Set(await filesOf(tmp, 'blob-'));
      await killMidWrite(
        ['pull', `${proxy.host}/kill/os:big`, '-o', `oci:${layout}:killed`, '-q'],
        async () => {
          const mine = (await filesOf(tmp, 'blob-', STALL_AFTER)).find((n) => !seen.has(n));
          if (mine) killed.push(mine);
          return mine !== undefined;
        },
        layout,
      );
    }
    // Each killed pull left its half-written blob and its registration; each that came after removed
    // those of the ones before it, so the last one's are what is left.
    const owner = (name: string): string => name.split('-')[1]!;
    assert.equal(new Set(killed.map(owner)).size, kills);
    const lastOwner = owner(killed.at(-1)!);
    assert.deepEqual((await readdir(tmp)).map(owner), [lastOwner, lastOwner]);

    const next = await runCli(['pull', `${reg.host}/kill/os:big`, '-o', `oci:${layout}:big`, '-q']);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual((await readdir(layout)).sort(), ['blobs', 'index.json', 'oci-layout'], 'no temporary directory, no lock');
    assert.deepEqual(await tags(layout), ['big', 'kept']);
    for (const tag of ['kept', 'big']) {
      const v = await runCli(['verify', `oci:${layout}:${tag}`]);
      assert.equal(v.code, 0, v.stderr);
    }
  });

  await t.test('archive', async () => {
    const dir = join(root, 'archives');
    await mkdir(dir);
    const archive = join(dir, 'images.tar');
    const first = await runCli(['copy', `${reg.host}/kill/os:small`, `oci-archive:${archive}:kept`, '-q']);
    assert.equal(first.code, 0, first.stderr);
    const beside = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith('.images.tar.oci-os-')).sort();
    const killed: string[] = [];
    for (let i = 0; i < kills; i++) {
      const seen = new Set(await beside());
      await killMidWrite(
        ['copy', `${proxy.host}/kill/os:big`, `oci-archive:${archive}:killed`, '-q'],
        async () => {
          for (const b of await beside()) {
            if (!seen.has(b) && (await filesOf(join(dir, b, '.oci-os-tmp'), 'blob-', STALL_AFTER)).length > 0) {
              killed.push(b);
              return true;
            }
          }
          return false;
        },
        dir,
      );
    }
    assert.equal(new Set(killed).size, kills);
    // Each killed writer removed the temporary layouts of those killed before it.
    assert.deepEqual(await beside(), [killed.at(-1)!]);

    const next = await runCli(['copy', `${reg.host}/kill/os:big`, `oci-archive:${archive}:big`, '-q']);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual((await readdir(dir)).sort(), ['images.tar'], 'nothing left beside the archive');
    for (const tag of ['kept', 'big']) {
      const v = await runCli(['verify', `oci-archive:${archive}:${tag}`]);
      assert.equal(v.code, 0, v.stderr);
    }
  });
});

test("a temporary whose pid now belongs to a process that started later is removed; a live writer's stays", async (t) => {
  const dir = join(await tempDir(t), 'layout');
  const tmp = join(dir, '.oci-os-tmp');
  const first = await OciLayout.open(dir, { create: true });
  await first.commit();
  // A live process other than this one, and its start time as /proc tells it.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => {
    other.kill('SIGKILL');
  });
  await new Promise((r) => other.once('spawn', r));
  const stat = await readFile(`/proc/${other.pid}/stat`, 'latin1');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
  await mkdir(tmp);
  const live = [`blob-${other.pid}.${start}-0123456789abcdef`, `writer-${other.pid}.${start}-0123456789abcdef`, `blob-${other.pid}-fedcba9876543210`];
  const reused = [`blob-${other.pid}.${Number(start) + 1}-0123456789abcdef`, `writer-${other.pid}.1-0123456789abcdef`];
  for (const n of [...live, ...reused]) await writeFile(join(tmp, n), 'x');

  const w = await OciLayout.open(dir, { create: true });
  await w.commit();
  assert.deepEqual((await readdir(tmp)).sort(), [...live].sort(), 'what a live process may still write stays');
  other.kill('SIGKILL');
  await new Promise((r) => other.once('exit', r));
  const again = await OciLayout.open(dir, { create: true });
  await again.commit();
  assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'oci-layout'], 'gone with its process');
});
