/**
 * Builder details: a cached payload that grows while it is confirmed is not
 * pushed truncated; the config size is known exactly before hashing; JSON
 * maps are serialized with Go's key order, everything else as before.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ContentStore } from '../../src/content/store.js';
import { isOciError } from '../../src/errors.js';
import { canonicalJson, jsonMap } from '../../src/oci/json.js';
import { OciLayout } from '../../src/ocilayout/layout.js';
import { buildOsImage } from '../../src/osimage/builder.js';
import { encodeChunkHash, normalizeProductInfo, predictConfigSize, serializeConfig } from '../../src/osimage/format.js';
import { PayloadCache } from '../../src/osimage/payload-cache.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test('a cached payload that grows after its stat is encoded again, not reused with its old size', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'system.img');
  await writeFile(path, pseudoRandom(2_000_000, 5));
  const cache = new PayloadCache(join(dir, 'cache'));
  const layout = await OciLayout.open(join(dir, 'lay'), { create: true });
  t.after(() => layout.abort());
  const options = { payloads: [{ name: 'system', path }], cache, encoding: { compression: 'none' as const } };
  const first = await buildOsImage(layout, options);
  assert.equal(first.payloads[0]!.reused, false);
  const again = await buildOsImage(layout, options);
  assert.equal(again.payloads[0]!.reused, true, 'unchanged: the cached blob is reused');

  // The file grows between the stat and the hashing that confirms the cache entry
  // (here while the store is asked whether it has the cached blob).
  let appended = false;
  const racing: ContentStore = {
    exists: async (d) => {
      if (d.digest === first.payloads[0]!.digest && !appended) {
        appended = true;
        await appendFile(path, pseudoRandom(1_000_000, 6));
      }
      return layout.exists(d);
    },
    fetch: (d) => layout.fetch(d),
    push: (d, c, o) => layout.push(d, c, o),
    pushStream: (c) => layout.pushStream(c),
    resolve: (r) => layout.resolve(r),
    tag: (d, tag) => layout.tag(d, tag),
  };
  await assert.rejects(buildOsImage(racing, options), (err: unknown) => {
    assert.ok(isOciError(err, 'INPUT_UNREADABLE'), String(err));
    assert.match((err as Error).message, /changed size while it was read \(2000000 → 3000000 bytes\)/);
    return true;
  });
  assert.ok(appended);
  // Now stat and content agree again: encoded afresh, whole.
  const grown = await buildOsImage(layout, options);
  assert.equal(grown.payloads[0]!.size, 3_000_000);
  assert.equal(grown.payloads[0]!.reused, false);
});

test('predictConfigSize is the exact size serializeConfig gives, before any hash is computed', () => {
  const productInfo = normalizeProductInfo({ id: 'os', version: '1.0 <beta> & more', components: [{ id: 'k', version: '6.1' }] });
  const hash = (i: number): string => encodeChunkHash(createHash('sha256').update(String(i)).digest());
  const cases = [
    [{ name: 'empty', size: 0, hashChunkSize: 1024 }],
    [{ name: 'one', size: 1, hashChunkSize: 1024 }],
    [{ name: 'exact', size: 4096, hashChunkSize: 1024 }],
    [
      { name: 'system', size: 1_000_001, hashChunkSize: 1000 },
      { name: 'kernel.efi', size: 77, hashChunkSize: 16 },
      { name: 'e', size: 0, hashChunkSize: 16 },
    ],
  ];
  for (const payloads of cases) {
    const config = serializeConfig({
      format_version: '1',
      product_info: productInfo,
      payloads: payloads.map((p) => ({
        name: p.name,
        size: p.size,
        hash_chunk_size: p.hashChunkSize,
        chunk_hashes_sha256: Array.from({ length: Math.ceil(p.size / p.hashChunkSize) }, (_, i) => hash(i)),
      })),
    });
    assert.equal(predictConfigSize(productInfo, payloads), config.length, JSON.stringify(payloads));
  }
});

test('canonicalJson: maps sorted by their bytes as Go sorts them, plain objects unchanged', () => {
  const map = jsonMap([
    ['b', '1'],
    ['10', 'x'],
    ['9', 'y'],
    ['__proto__', 'p'],
    ['ä', 'u'],
    ['Z', 'z'],
    ['\u{1F600}', 's'],
    ['\uFFFD', 'r'],
  ]);
  const text = canonicalJson({ annotations: map }).toString('utf8');
  const keys = [...text.matchAll(/^\t\t"([^"]+)": /gm)].map((m) => m[1]);
  // Go compares UTF-8 bytes: U+FFFD (EF BF BD) sorts before U+1F600 (F0 ...), unlike UTF-16 order.
  assert.deepEqual(keys, ['10', '9', 'Z', '__proto__', 'b', 'ä', '\uFFFD', '\u{1F600}']);
  assert.equal(Object.getPrototypeOf(map), null);
  assert.equal(jsonMap({ a: 'b' }).a, 'b');

  // Everything else is what JSON.stringify(value, null, '\t') writes, with Go's escapes.
  const doc = {
    schemaVersion: 2,
    s: 'a<b>&c\u2028',
    n: -1.5,
    t: true,
    f: false,
    nil: null,
    skipped: undefined,
    fn: () => 1,
    empty: {},
    none: [],
    arr: [1, undefined, 'x', { k: [] }],
    nested: { deep: { deeper: [[1, 2], []] } },
    2: 'integer key',
    buf: { toJSON: () => 'converted' },
  };
  const expected = JSON.stringify(doc, null, '\t').replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + '\n';
  assert.equal(canonicalJson(doc).toString('utf8'), expected);
  assert.equal(canonicalJson([]).toString('utf8'), '[]\n');
  assert.equal(canonicalJson('s').toString('utf8'), '"s"\n');
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => canonicalJson(cyclic), TypeError);
});
