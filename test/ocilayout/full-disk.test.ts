/**
 * Pulls and copies from a registry into a layout or an archive on a file
 * system that fills up (a small tmpfs): the command fails with one line
 * (or the --json error object) naming the lack of space, and the
 * destination is left exactly as it was.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { buildImage, KiB } from '../cli/image-helpers.js';
import { containerImage, writeLayout } from '../copy/fixtures.js';
import { runCli, runCliWithin, tempDir } from '../helpers/cli.js';
import { type RegistryHandle, startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';

/**
 * A tmpfs of `size` mounted on a new directory, unmounted after the test.
 * Mounting needs root: outside CI a test run by another user is skipped,
 * under CI=true (which runs as root) it fails.
 */
export async function smallDisk(t: TestContext, size: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) {
    const msg = 'mounting a tmpfs needs root';
    if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(msg);
    t.skip(msg);
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), 'oci-os-small-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  t.after(async () => {
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Every path below `dir` with its size (directories as `/`), sorted: what a failed write must not change. */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = join(prefix, e.name);
    if (e.isDirectory()) out.push(`${rel}/`, ...(await tree(dir, rel)));
    else out.push(`${rel} ${(await stat(join(dir, rel))).size}`);
  }
  return out;
}

/** One line on stderr, naming the lack of space. */
function assertOneLineNoSpace(r: { code: number; stdout: string; stderr: string }): void {
  assert.notEqual(r.code, 0, `the command must fail; stdout: ${r.stdout} stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^oci-os: error: .*no space left on device/);
}

test('registry to a layout or an archive on a full disk: non-zero exit, one line (or the --json error), destination unchanged', {
  timeout: 120_000,
}, async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const disk = await smallDisk(t, '2m');
  if (!disk) return;
  const reg: RegistryHandle = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);
  // A small image that fits, and one (uncompressed, random) that cannot.
  const smallRoot = join(root, 'small');
  const bigRoot = join(root, 'big');
  for (const d of [smallRoot, bigRoot]) execFileSync('mkdir', ['-p', d]);
  const small = await buildImage(smallRoot, { size: 64 * KiB, tag: 'small' });
  const big = await buildImage(bigRoot, { size: 4 * 1024 * KiB, compression: 'none', tag: 'big', seed: 7 });
  for (const [img, tag] of [
    [small, 'small'],
    [big, 'big'],
  ] as const) {
    const up = await runCli(['copy', img.location, `${reg.host}/full/os:${tag}`, '-q']);
    assert.equal(up.code, 0, up.stderr);
  }

  await t.test('pull registry → layout', async () => {
    const layout = join(disk, 'layout');
    const first = await runCli(['pull', `${reg.host}/full/os:small`, '-o', `oci:${layout}`, '-q']);
    assert.equal(first.code, 0, first.stderr);
    const index = await readFile(join(layout, 'index.json'));
    const before = await tree(layout);
    const r = await runCli(['pull', `${reg.host}/full/os:big`, '-o', `oci:${layout}`, '-q']);
    assertOneLineNoSpace(r);
    assert.match(r.stderr, new RegExp(`cannot write ${layout}`));
    assert.deepEqual(await readFile(join(layout, 'index.json')), index, 'index.json as it was');
    assert.deepEqual(await tree(layout), before, 'no stray files');
    assert.deepEqual(await readdir(disk), ['layout']);
  });

  await t.test('copy registry → archive', async () => {
    const archive = join(disk, 'images.tar');
    const first = await runCli(['copy', `${reg.host}/full/os:small`, `oci-archive:${archive}:small`, '-q']);
    assert.equal(first.code, 0, first.stderr);
    const bytes = await readFile(archive);
    const beside = (await readdir(disk)).sort();
    const r = await runCli(['copy', `${reg.host}/full/os:big`, `oci-archive:${archive}:big`, '-q']);
    assertOneLineNoSpace(r);
    // Named as the user named it, not by the temporary layout beside it.
    assert.match(r.stderr, new RegExp(`cannot write ${archive}: no space left on device`));
    assert.deepEqual(await readFile(archive), bytes, 'the archive as it was');
    assert.deepEqual((await readdir(disk)).sort(), beside, 'nothing left beside the archive');
    await rm(archive);
  });

  await t.test('an existing archive with no room to unpack it beside itself: said as a write, archive unchanged', async () => {
    const midRoot = join(root, 'mid');
    execFileSync('mkdir', ['-p', midRoot]);
    const mid = await buildImage(midRoot, { size: 1100 * KiB, compression: 'none', tag: 'mid', seed: 9 });
    const made = join(root, 'mid.tar');
    const c = await runCli(['copy', mid.location, `oci-archive:${made}:mid`, '-q']);
    assert.equal(c.code, 0, c.stderr);
    const archive = join(disk, 'mid.tar');
    await copyFile(made, archive);
    try {
      const bytes = await readFile(archive);
      const r = await runCli(['copy', `${reg.host}/full/os:small`, `oci-archive:${archive}:small`, '-q']);
      assertOneLineNoSpace(r);
      assert.match(r.stderr, new RegExp(`cannot write ${archive}: no space left on device`));
      assert.deepEqual(await readFile(archive), bytes, 'the archive as it was');
      assert.deepEqual((await readdir(disk)).sort(), ['layout', 'mid.tar']);
    } finally {
      await rm(archive, { force: true });
    }
  });

  await t.test("registry → layout while another blob's download hangs: the failure ends the copy at once", async () => {
    const proxy = await startFaultProxy(reg.url, { otherListener: false });
    try {
      const kernel = big.payloads.find((p) => p.name === 'kernel.efi')!;
      proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${kernel.digest}$`), times: Infinity, action: { type: 'stallResponse', afterBytes: 1 } });
      const layout = join(disk, 'stalled');
      const started = Date.now();
      // The registry client would wait minutes for the hung body; the test gives it far less.
      const r = await runCliWithin(['pull', `${proxy.host}/full/os:big`, '-o', `oci:${layout}`, '-q'], 60_000);
      assert.equal(r.timedOut, false, `still running after ${Date.now() - started} ms: ${r.stderr}`);
      assertOneLineNoSpace(r);
      assert.ok(
        proxy.log.some((e) => e.fault === 'stallResponse'),
        'the hanging download was under way',
      );
      assert.deepEqual(await readdir(disk), ['layout']);
    } finally {
      await proxy.stop();
    }
  });

  await t.test("image build on a registry base into a full layout while another base layer's download hangs", async () => {
    const baseImage = await containerImage('amd64', { layers: 2, layerSize: 5_000_000 });
    await writeLayout(join(root, 'base'), baseImage.manifest, baseImage.blobs, 'v1');
    const up = await runCli(['copy', `oci:${join(root, 'base')}:v1`, `${reg.host}/full/base:v1`, '-q']);
    assert.equal(up.code, 0, up.stderr);
    const layers = (JSON.parse(baseImage.manifest.bytes.toString()) as { layers: Array<{ digest: string }> }).layers;
    const proxy = await startFaultProxy(reg.url, { otherListener: false });
    try {
      proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${layers[1]!.digest}$`), times: Infinity, action: { type: 'stallResponse', afterBytes: 1 } });
      const out = join(disk, 'built');
      const r = await runCliWithin(['image', 'build', '--base', `${proxy.host}/full/base:v1`, '-o', `oci:${out}`], 60_000);
      assert.equal(r.timedOut, false, `still running: ${r.stderr}`);
      assertOneLineNoSpace(r);
      assert.ok(
        proxy.log.some((e) => e.fault === 'stallResponse'),
        'the hanging download was under way',
      );
      assert.deepEqual(await readdir(disk), ['layout']);
    } finally {
      await proxy.stop();
    }
  });

  await t.test('registry → new layout with --json', async () => {
    const layout = join(disk, 'fresh');
    const r = await runCli(['copy', `${reg.host}/full/os:big`, `oci:${layout}`, '--json']);
    assert.notEqual(r.code, 0, `the command must fail; stdout: ${r.stdout} stderr: ${r.stderr}`);
    assert.ok(r.stdout.trim() !== '', 'the --json error object is printed');
    const out = JSON.parse(r.stdout) as { error: { code: string; message: string }; exitCode: number };
    assert.equal(out.error.code, 'OUTPUT_UNWRITABLE');
    assert.match(out.error.message, /no space left on device/);
    assert.equal(out.exitCode, r.code);
    assert.equal(r.stderr.trim(), '', 'nothing but the JSON');
    // A layout the failed command created is removed again.
    assert.deepEqual(await readdir(disk), ['layout']);
  });
});
