import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { canonicalJson, jsonMap } from '../../src/oci/json.js';
import { normalizeProductInfo, serializeConfig } from '../../src/osimage/format.js';
import { parseOsImageConfig, parseOsImageManifest } from '../../src/osimage/reader.js';
import { blobPath } from '../cli/image-helpers.js';
import { runCli, tempDir } from '../helpers/cli.js';

// Monogon's builder reads product info with Go's encoding/json, which turns
// a lone UTF-16 surrogate escape into U+FFFD, and writes that as the bytes
// EF BF BD (osimage-format.md, "Edge cases seen with Monogon's own code").
// JSON.stringify writes a lone surrogate as the escape "\ud800" instead, so
// the config bytes, and every digest above them, would differ.

const FFFD = Buffer.from([0xef, 0xbf, 0xbd]);
const loneEscape = /\\ud[89a-f][0-9a-f]{2}/i;

const config = (name: string) =>
  serializeConfig({
    format_version: '1',
    product_info: normalizeProductInfo({ id: 'testos', name, version: '1.0', variant: 'x86_64' }),
    payloads: [{ name: 'system', size: 0, hash_chunk_size: 1048576, chunk_hashes_sha256: null }],
  });

test('a lone surrogate in product info is written as U+FFFD, as Go writes what its decoder made of it', () => {
  for (const lone of ['\ud800', '\udfff', 'a\udc00b', '\ud800\ud800\udc00', '\udbff']) {
    const bytes = config(lone);
    assert.ok(bytes.includes(FFFD), `${JSON.stringify(lone)}: EF BF BD in ${bytes.toString('latin1')}`);
    assert.doesNotMatch(bytes.toString('utf8'), loneEscape, JSON.stringify(lone));
    assert.deepEqual(
      bytes,
      config(lone.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')),
      `${JSON.stringify(lone)}: same bytes as U+FFFD in its place`,
    );
  }
  // A valid pair stays the character it encodes, as UTF-8.
  assert.ok(config('\ud83d\ude00').includes(Buffer.from('😀')));
  assert.equal(canonicalJson(jsonMap({ 'k\ud800': 'v\udfff' })).toString(), '{\n\t"k\ufffd": "v\ufffd"\n}\n', 'map keys and values alike');
  assert.equal(canonicalJson(['<\ud800>']).toString(), '[\n\t"\\u003c\ufffd\\u003e"\n]\n');
});

test('the reader decodes a lone surrogate escape to U+FFFD like Go, so reading and writing again gives the same bytes', () => {
  const written = config('\ufffd');
  const text = written.toString('utf8').replace('\ufffd', '\\ud800');
  const manifest = parseOsImageManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/vnd.monogon.os.image.v1',
        config: { mediaType: 'application/vnd.monogon.os.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: text.length },
        layers: [{ mediaType: 'application/zstd', digest: `sha256:${'1'.repeat(64)}`, size: 0 }],
      }),
    ),
  );
  const { config: read } = parseOsImageConfig(Buffer.from(text), manifest);
  assert.equal(read.product_info.name, '\ufffd');
  assert.deepEqual(serializeConfig(read), written);
});

test('build with a --product-info file holding "\\ud800" writes the config Monogon\'s builder writes', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'system.img'), 'payload bytes\n');
  const build = async (infoText: string, out: string) => {
    await writeFile(join(dir, `${out}.json`), infoText);
    const r = await runCli([
      'build',
      '-p',
      `system=${join(dir, 'system.img')}`,
      '--compression',
      'none',
      '--product-info',
      join(dir, `${out}.json`),
      '-o',
      `oci:${join(dir, out)}:v1`,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const digest = JSON.parse(r.stdout).digest as string;
    const manifest = JSON.parse(await readFile(blobPath(join(dir, out), digest), 'utf8'));
    return { digest, config: await readFile(blobPath(join(dir, out), manifest.config.digest)) };
  };
  const lone = await build('{"id": "testos", "name": "bad \\ud800 name", "version": "1.0", "variant": "x86_64"}\n', 'lone');
  assert.ok(lone.config.includes(Buffer.concat([Buffer.from('"bad '), FFFD, Buffer.from(' name"')])), lone.config.toString('latin1'));
  assert.doesNotMatch(lone.config.toString('utf8'), loneEscape);
  const replaced = await build('{"id": "testos", "name": "bad \ufffd name", "version": "1.0", "variant": "x86_64"}\n', 'replaced');
  assert.equal(lone.digest, replaced.digest, 'same manifest digest as with U+FFFD written out');

  const inspect = await runCli(['inspect', `oci:${join(dir, 'lone')}:v1`, '--json']);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.doesNotMatch(inspect.stdout, loneEscape);
  assert.match(inspect.stdout, /bad \ufffd name/);
});

test('invalid UTF-8 in a --product-info file or a config becomes one U+FFFD per byte, as Go decodes it', async (t) => {
  const { decodeUtf8AsGo } = await import('../../src/oci/json.js');
  const cases: Array<[number[], string]> = [
    [[0xe2, 0x82, 0x41], '\ufffd\ufffdA'], // a cut-short sequence: one per byte (TextDecoder gives one in all)
    [[0xed, 0xa0, 0x80], '\ufffd\ufffd\ufffd'], // a surrogate written in UTF-8
    [[0xc0, 0xaf], '\ufffd\ufffd'], // an overlong '/'
    [[0xf4, 0x90, 0x80, 0x80], '\ufffd\ufffd\ufffd\ufffd'], // past U+10FFFF
    [[0x61, 0xf0, 0x9f, 0x98, 0x80, 0xff], 'a😀\ufffd'],
  ];
  for (const [bytes, want] of cases) assert.equal(decodeUtf8AsGo(Uint8Array.from(bytes)), want, Buffer.from(bytes).toString('hex'));

  const dir = await tempDir(t);
  await writeFile(join(dir, 'system.img'), 'payload bytes\n');
  const info = join(dir, 'info.json');
  await writeFile(info, Buffer.concat([Buffer.from('{"name": "x'), Buffer.from([0xe2, 0x82, 0x41]), Buffer.from('"}')]));
  const r = await runCli([
    'build',
    '-p',
    `system=${join(dir, 'system.img')}`,
    '--compression',
    'none',
    '--product-info',
    info,
    '-o',
    `oci:${join(dir, 'out')}:v1`,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const manifest = JSON.parse(await readFile(blobPath(join(dir, 'out'), JSON.parse(r.stdout).digest), 'utf8'));
  const configBytes = await readFile(blobPath(join(dir, 'out'), manifest.config.digest));
  assert.ok(configBytes.includes(Buffer.concat([Buffer.from('"x'), FFFD, FFFD, Buffer.from('A"')])), configBytes.toString('latin1'));
});
