import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startRegistryServer } from '../../src/server/index.js';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';

const MiB = 1 << 20;

function events(stderr: string): Array<Record<string, any>> {
  return stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

test('--progress json: parseable events that add up to what was uploaded', async (t) => {
  const dir = await tempDir(t);
  const server = await startRegistryServer({ root: join(dir, 'registry'), port: 0 });
  t.after(() => server.close());
  await writeFile(join(dir, 'system.img'), pseudoRandom(10 * MiB + 3, 5, true));
  await writeFile(join(dir, 'kernel.efi'), 'kernel');
  const r = await runCli(
    [
      'push',
      `${server.address}/os/progress:1`,
      '-p',
      `system=${join(dir, 'system.img')}`,
      '-p',
      `kernel.efi=${join(dir, 'kernel.efi')}`,
      '--progress',
      'json',
      '--json',
      '--chunk-size',
      '1MiB',
    ],
    {
      env: { OCI_OS_CACHE_DIR: join(dir, 'cache') },
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const ev = events(r.stderr);
  assert.deepEqual([...new Set(ev.map((e) => e.type))].sort(), ['blob-done', 'blob-progress', 'blob-start', 'manifest', 'tag']);
  for (const start of ev.filter((e) => e.type === 'blob-start')) {
    const progress = ev.filter((e) => e.type === 'blob-progress' && e.id === start.id);
    assert.equal(progress.at(-1)?.bytes ?? 0, start.total, `${start.name}: progress reaches its total`);
    assert.ok(
      progress.every((p, i) => i === 0 || p.bytes >= progress[i - 1]!.bytes),
      'progress only grows',
    );
  }
  const done = ev.filter((e) => e.type === 'blob-done');
  assert.equal(done.length, 3);
  // Every blob opens and closes once, the config included.
  assert.deepEqual(
    done.map((e) => e.id).sort(),
    ev
      .filter((e) => e.type === 'blob-start')
      .map((e) => e.id)
      .sort(),
  );
  for (const d of done) assert.ok(ev.indexOf(d) > ev.findIndex((e) => e.type === 'blob-start' && e.id === d.id), `${d.name}: started before done`);
  const sum = (xs: Array<Record<string, any>>) => xs.reduce((n, x) => n + (x.uploadedBytes as number), 0);
  assert.equal(sum(done), sum(report.blobs), 'events add up to the report');
  assert.ok(sum(done) >= done.reduce((n, d) => n + d.size, 0), 'every blob byte went up at least once');
  assert.equal(ev.find((e) => e.type === 'manifest')!.digest, report.digest);
  assert.equal(ev.filter((e) => e.type === 'tag').length, 1);
  assert.ok(ev.findIndex((e) => e.type === 'tag') > ev.findIndex((e) => e.type === 'manifest'), 'tag after manifest');
});

test('plain progress (not a terminal) has a line per blob and no control characters; --quiet prints only the result', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'system.img'), pseudoRandom(3 * MiB, 9, true));
  const r = await runCli(['build', '-p', `system=${join(dir, 'system.img')}`, '-o', `oci:${join(dir, 'lay')}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /[\x00-\x08\x0b-\x1f\x7f]/, 'no control characters');
  assert.match(r.stderr, /^system sha256:[0-9a-f]{12} .* written/m);
  assert.match(r.stderr, /^tagged oci:.*:latest$/m);
  const q = await runCli(['build', '-p', `system=${join(dir, 'system.img')}`, '-o', `oci:${join(dir, 'lay')}`, '--quiet']);
  assert.equal(q.code, 0);
  assert.equal(q.stderr, '');
  assert.match(q.stdout, /^sha256:[0-9a-f]{64}\n$/);
});
