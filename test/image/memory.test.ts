import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, tempDir } from '../helpers/cli.js';

const LAYER = 256 << 20;

/** Runs the CLI and returns its exit code and peak RSS (bytes), reported by the process itself at exit. */
function runMeasured(args: string[], rssFile: string): Promise<{ code: number; stderr: string; peakRss: number }> {
  const reporter = `data:text/javascript,import{writeFileSync}from'node:fs';process.on('exit',()=>writeFileSync(process.env.RSS_FILE,String(process.resourceUsage().maxRSS*1024)))`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', reporter, cliPath, ...args], { env: { ...process.env, RSS_FILE: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', async (code) => resolve({ code: code ?? -1, stderr, peakRss: Number(await readFile(rssFile, 'utf8').catch(() => '0')) }));
  });
}

test(`a ${LAYER >> 20} MiB layer is built in bounded memory (gzip and zstd)`, async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'tree'));
  const fh = await open(join(dir, 'tree', 'disk.img'), 'w');
  await fh.truncate(LAYER); // sparse: costs no disk, reads as zeros
  await fh.close();
  for (const compression of ['zstd', 'gzip']) {
    const r = await runMeasured(['image', 'build', '--rootfs', join(dir, 'tree'), '--layer-compression', compression, '--compression-level', '1', '--output', `oci:${join(dir, compression)}`], join(dir, `rss-${compression}`));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.peakRss > 0, "the process reported its peak RSS");
    t.diagnostic(`${compression}: peak RSS ${(r.peakRss / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(r.peakRss < 200 << 20, `${compression}: peak RSS ${(r.peakRss / 2 ** 20).toFixed(0)} MiB for a ${LAYER >> 20} MiB layer`);
  }
});
