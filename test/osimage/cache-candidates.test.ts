/**
 * A payload of the size of a cached one but other content (a rebuilt
 * partition image) is read once, to encode it: its first chunk rules the
 * cached content out before the rest is hashed. The same content in another
 * file is still found and reused.
 */

import assert from 'node:assert/strict';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { buildOsImage } from '../../src/osimage/builder.js';
import { PayloadCache } from '../../src/osimage/payload-cache.js';
import type { ProgressEvent } from '../../src/progress/events.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test('a changed payload of a cached size is not hashed whole before it is encoded', async (t) => {
  const dir = await tempDir(t);
  const size = 3_000_000;
  const cache = new PayloadCache(join(dir, 'cache'));
  const layout = await OciLayout.open(join(dir, 'lay'), { create: true });
  t.after(() => layout.abort());
  const build = async (path: string) => {
    const events: ProgressEvent[] = [];
    const r = await buildOsImage(layout, {
      payloads: [{ name: 'system', path }],
      cache,
      encoding: { compression: 'none', frameSize: 1 << 20 },
      progress: (e) => events.push(e),
    });
    const bytes = events.flatMap((e) => (e.type === 'blob-progress' && e.id === 'system' ? [e.bytes] : []));
    return { reused: r.payloads[0]!.reused, bytes };
  };
  const a = join(dir, 'a.img');
  await writeFile(a, pseudoRandom(size, 1));
  assert.equal((await build(a)).reused, false);

  // Same size, other bytes: encoded straight away. A whole-file hash first would report the whole
  // size done, then start again from nothing as the encoding reads it.
  const b = join(dir, 'b.img');
  await writeFile(b, pseudoRandom(size, 2));
  const changed = await build(b);
  assert.equal(changed.reused, false);
  assert.ok(
    changed.bytes.every((n, i) => i === 0 || n >= changed.bytes[i - 1]!),
    `progress only grows: ${changed.bytes.join(' ')}`,
  );

  // The first content in another file: still found by content.
  const copy = join(dir, 'copy.img');
  await copyFile(a, copy);
  assert.equal((await build(copy)).reused, true);
});
