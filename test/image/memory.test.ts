import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath, tempDir } from '../helpers/cli.js';

const LAYER = 256 << 20;

/** Runs the CLI and returns its exit code and peak RSS (bytes), reported by the process itself at exit. */
function runMeasured(args: string[], rssFile: string): Promise<{ code: number; stderr: string; peakRss: number }> {
  const reporter = `data:text/javascript,import{writeFileSync}from'node:fs';process.on('exit',()=>writeFileSync(process.env.RSS_FILE,String(process.resourceUsage().maxRSS*1024)))`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', reporter, cliPath, ...args], {
      env: { ...process.env, RSS_FILE: rssFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', async (code) => resolve({ code: code ?? -1, stderr, peakRss: Number(await readFile(rssFile, 'utf8').catch(() => '0')) }));
  });
}

test(`a ${LAYER >> 20} MiB layer is built in bounded memory (gzip and zstd)`, async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'tree'));
  // Incompressible, so that the compressed layer is as large as the file: zeros would compress to
  // almost nothing and hide a layer held in memory. A keystream of fixed key: the same bytes every run.
  const keystream = createCipheriv('aes-256-ctr', Buffer.alloc(32, 1), Buffer.alloc(16));
  const zeros = Buffer.alloc(4 << 20);
  const file = createWriteStream(join(dir, 'tree', 'disk.img'));
  for (let written = 0; written < LAYER; written += zeros.length) {
    if (!file.write(keystream.update(zeros))) await once(file, 'drain');
  }
  await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
  for (const compression of ['zstd', 'gzip']) {
    const output = join(dir, compression);
    const r = await runMeasured(
      ['image', 'build', '--rootfs', join(dir, 'tree'), '--layer-compression', compression, '--compression-level', '1', '--output', `oci:${output}`],
      join(dir, `rss-${compression}`),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.peakRss > 0, 'the process reported its peak RSS');
    t.diagnostic(`${compression}: peak RSS ${(r.peakRss / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(r.peakRss < 200 << 20, `${compression}: peak RSS ${(r.peakRss / 2 ** 20).toFixed(0)} MiB for a ${LAYER >> 20} MiB layer`);
    await rm(output, { recursive: true }); // a layer as large as the file: one at a time on disk
  }
});
