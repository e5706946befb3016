/**
 * An unchanged payload file whose identity (device, inode, size, mtime and
 * ctime in nanoseconds) the cache recorded well after its last change is
 * reused without being read whole: the recorded chunk hashes go into the
 * config. A file changed since (its ctime moved), or one recorded within
 * the racy margin of its last change, is read and hashed again.
 */

import assert from 'node:assert/strict';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { buildOsImage } from '../../src/osimage/builder.js';
import { contentKey, PayloadCache, type PayloadCacheEntry, racyMarginNs } from '../../src/osimage/payload-cache.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test('a payload file the cache may trust by its identity is not read whole again', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = join(dir, 'cache');
  const layout = await OciLayout.open(join(dir, 'lay'), { create: true });
  t.after(() => layout.abort());
  const path = join(dir, 'system.img');
  await writeFile(path, pseudoRandom(5 * 1024 * 1024 + 7, 3));
  const build = async () => {
    const r = await buildOsImage(layout, {
      payloads: [{ name: 'system', path }],
      cache: new PayloadCache(cacheDir),
      encoding: { compression: 'none', frameSize: 1 << 20 },
    });
    return {
      reused: r.payloads[0]!.reused,
      hashes: (JSON.parse(r.config.toString()) as { payloads: Array<{ chunk_hashes_sha256: string[] }> }).payloads[0]!.chunk_hashes_sha256,
    };
  };
  const first = await build();
  assert.equal(first.reused, false);

  // The recorded chunk hashes are what a trusted entry contributes: mark one (the content key made to
  // match), so that the config shows whether the file was read again.
  const entriesFile = join(cacheDir, 'payloads.json');
  const edit = async (change: (e: PayloadCacheEntry) => void): Promise<void> => {
    const doc = JSON.parse(await readFile(entriesFile, 'utf8')) as { entries: PayloadCacheEntry[] };
    change(doc.entries[0]!);
    await writeFile(entriesFile, JSON.stringify(doc));
  };
  const marked = [...first.hashes];
  marked[2] = marked[3]!;
  const key = contentKey(5 * 1024 * 1024 + 7, 1024 * 1024, marked);
  await writeFile(join(cacheDir, 'chunks', `${key}.json`), JSON.stringify(marked));
  let ctimeNs = '';
  await edit((e) => {
    assert.ok(e.ctimeNs && e.statAtNs, 'the identity is recorded to the nanosecond');
    ctimeNs = e.ctimeNs;
    e.contentKey = key;
  });

  // Recorded right after the file was written: within the racy margin, so read again.
  const racy = await build();
  assert.equal(racy.reused, false);
  assert.deepEqual(racy.hashes, first.hashes);

  // Recorded long after the file's last change: trusted, not read (the marked hashes come back).
  await edit((e) => {
    e.contentKey = key;
    e.statAtNs = String(BigInt(e.ctimeNs!) + racyMarginNs + 1n);
  });
  assert.equal(ctimeNs.length > 0, true);
  const trusted = await build();
  assert.equal(trusted.reused, true);
  assert.deepEqual(trusted.hashes, marked);

  // A touch moves the ctime: the identity no longer matches, the file is read and hashed.
  await edit((e) => {
    e.contentKey = key;
    e.statAtNs = String(BigInt(e.ctimeNs!) + racyMarginNs + 1n);
  });
  const now = new Date();
  await utimes(path, now, now);
  const touched = await build();
  assert.deepEqual(touched.hashes, first.hashes);
});
