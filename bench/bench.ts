/**
 * `npm run bench`: performance figures as ratios against peers measured in
 * the same run. Sections can be picked: `npm run bench -- build push image startup`.
 * BENCH_DIR chooses the scratch directory (default: a temp dir).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchBuild } from './build.js';
import { benchImage } from './image.js';
import { benchLayering } from './layering.js';
import { benchLink } from './link.js';
import { benchPush } from './push.js';
import { benchStartup } from './startup.js';
import { makeMixedFile } from './util.js';

const sections = process.argv.slice(2);
const want = (s: string) => sections.length === 0 || sections.includes(s);
const dir = process.env.BENCH_DIR ?? (await mkdtemp(join(tmpdir(), 'oci-os-bench-')));
const results: Record<string, unknown> = {};

try {
  if (want('build')) {
    const p1 = join(dir, 'payload-1g.bin');
    await makeMixedFile(p1, 1024, 1);
    results['build 1 GiB'] = await benchBuild(dir, p1, 1 << 30);
    await rm(p1, { force: true });
    const p2 = join(dir, 'payload-2g.bin');
    await makeMixedFile(p2, 2048, 2);
    results['build 2 GiB'] = await benchBuild(dir, p2, 2 * 2 ** 30);
    await rm(p2, { force: true });
  }
  if (want('push')) results.push = await benchPush(dir);
  if (want('image')) results.image = await benchImage(dir);
  if (want('layering')) results.layering = await benchLayering(dir);
  if (want('startup')) results.startup = await benchStartup(dir);
  if (want('link')) results.link = await benchLink(dir);
} finally {
  if (!process.env.BENCH_DIR) await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));
