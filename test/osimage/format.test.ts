import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { canonicalJson } from '../../src/oci/json.js';
import { chunkCount, normalizeProductInfo, parseProductInfo, serializeConfig, validatePayloadName, variantArchitecture } from '../../src/osimage/format.js';
import { repoRoot } from '../helpers/cli.js';

const golden = (name: string) => readFile(join(repoRoot, 'fixtures', 'golden', name));

test('config serialization matches the golden file derived from the format spec', async () => {
  const product = parseProductInfo(JSON.parse(await readFile(join(repoRoot, 'fixtures', 'product-info.json'), 'utf8')));
  const bytes = serializeConfig({
    format_version: '1',
    product_info: normalizeProductInfo(product),
    payloads: [
      {
        name: 'system',
        size: 1572864,
        hash_chunk_size: 1048576,
        chunk_hashes_sha256: ['MRtjwg5Kd1b+xmroKdEO/fqocmFpt9gqPVQu+mkLNVE', 'PDjyOwVq6kpLAsr0OobWdAIL2ofmXVIjF8rbyWihtoY'],
      },
      { name: 'kernel.efi', size: 24, hash_chunk_size: 1048576, chunk_hashes_sha256: ['BPIMBRByX0bo9Xw1c9OApP7XX/7Sp8yyGAk8VU0wL8Y'] },
    ],
  });
  assert.equal(bytes.toString(), (await golden('config.json')).toString());
});

test('key order is fixed whatever order the input has; empty payloads write null hashes', () => {
  const bytes = serializeConfig({
    format_version: '1',
    product_info: { build_tree_dirty: false, variant: 'aarch64', commit_date: '', commit_hash: '', version: 'v', name: 'n', id: 'i' },
    payloads: [{ chunk_hashes_sha256: [], hash_chunk_size: 4, size: 0, name: 'empty' } as never],
  });
  const text = bytes.toString();
  assert.match(
    text,
    /^\{\n\t"format_version": "1",\n\t"product_info": \{\n\t\t"id": "i",\n\t\t"name": "n",\n\t\t"version": "v",\n\t\t"variant": "aarch64",\n\t\t"commit_hash": "",\n\t\t"commit_date": "",\n\t\t"build_tree_dirty": false\n\t\},/,
  );
  assert.match(text, /"name": "empty",\n\t\t\t"size": 0,\n\t\t\t"hash_chunk_size": 4,\n\t\t\t"chunk_hashes_sha256": null\n/);
  assert.ok(text.endsWith('}\n'));
  assert.ok(!text.includes('components'), 'components omitted when not given');
});

test('JSON strings are escaped as the reference builder escapes them', () => {
  assert.equal(canonicalJson({ a: '<x> & y \u2028' }).toString(), '{\n\t"a": "\\u003cx\\u003e \\u0026 y \\u2028"\n}\n');
  assert.equal(canonicalJson({ a: '\n\t"\\' }).toString(), '{\n\t"a": "\\n\\t\\"\\\\"\n}\n');
});

test('product info: unknown keys, wrong types and bad variants are refused', () => {
  const bad: unknown[] = [
    [],
    'x',
    { idd: 'x' },
    { id: 1 },
    { build_tree_dirty: 'yes' },
    { components: {} },
    { components: [{ id: 'a' }] },
    { components: [{ id: 'a', version: '1', extra: 1 }] },
    { variant: 'x86_64', architecture: 'arm64' },
  ];
  for (const b of bad)
    assert.throws(
      () => parseProductInfo(b),
      (e) => isOciError(e, 'INVALID_PRODUCT_INFO'),
      JSON.stringify(b),
    );
  assert.throws(
    () => normalizeProductInfo({ variant: 'x86 64' }),
    (e) => isOciError(e, 'INVALID_PRODUCT_INFO'),
  );
  assert.throws(
    () => normalizeProductInfo({ variant: 'x86/64' }),
    (e) => isOciError(e, 'INVALID_PRODUCT_INFO'),
  );
  assert.deepEqual(parseProductInfo({ variant: 'x86_64-debug', architecture: 'x86_64' }), { variant: 'x86_64-debug' });
  assert.equal(variantArchitecture('x86_64-debug'), 'x86_64');
});

test('payload names follow the format pattern', () => {
  for (const ok of ['system', 'kernel.efi', 'a', '-x', 'A_1', 'x'.repeat(80), 'a.b_']) assert.doesNotThrow(() => validatePayloadName(ok), ok);
  for (const bad of ['', '.hidden', '_x', 'x.', 'a b', 'x'.repeat(81), 'é', 'a/b'])
    assert.throws(
      () => validatePayloadName(bad),
      (e) => isOciError(e, 'INVALID_PAYLOAD_NAME'),
      bad,
    );
});

test('chunk counts', () => {
  assert.equal(chunkCount(0, 1024), 0);
  assert.equal(chunkCount(1, 1024), 1);
  assert.equal(chunkCount(1024, 1024), 1);
  assert.equal(chunkCount(1025, 1024), 2);
});
