import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { OciError } from '../../src/errors.js';
import { canonicalJson } from '../../src/oci/json.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { OS_IMAGE_ARTIFACT_TYPE, OS_IMAGE_CONFIG_MEDIA_TYPE } from '../../src/osimage/format.js';
import { parseOsImageConfig, parseOsImageManifest } from '../../src/osimage/reader.js';
import { blobPath, buildImage, KiB, sha256 } from '../cli/image-helpers.js';
import { runCli, tempDir } from '../helpers/cli.js';

const H = 'A'.repeat(43);
const layer = { mediaType: MediaType.zstd, digest: sha256(Buffer.from('y')), size: 10 };
const cfgDesc = { mediaType: OS_IMAGE_CONFIG_MEDIA_TYPE, digest: sha256(Buffer.from('x')), size: 1 };
const manifest = parseOsImageManifest(
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: OS_IMAGE_ARTIFACT_TYPE, config: cfgDesc, layers: [layer] })),
);

/** Config text with the product info and payload fields given as raw JSON (so number forms such as 2.4e1 survive). */
function config(productInfo = '{"id": "t", "build_tree_dirty": false}', payload: Record<string, string> = {}, extra = ''): Buffer {
  const fields = { name: '"system"', size: '24', hash_chunk_size: '8', chunk_hashes_sha256: JSON.stringify([H, H, H]), ...payload };
  const p = Object.entries(fields)
    .map(([k, v]) => `${JSON.stringify(k)}: ${v}`)
    .join(', ');
  return Buffer.from(`{"format_version": "1", "product_info": ${productInfo}, "payloads": [{${p}}]${extra}}`);
}

const refused = (bytes: Buffer, message: RegExp) => () =>
  assert.throws(
    () => parseOsImageConfig(bytes, manifest),
    (e: OciError) => e.code === 'INVALID_FORMAT' && message.test(e.message),
  );

describe('OS image reader: field types as the format reader decodes them', () => {
  it('refuses a config value of the wrong type anywhere, naming the field', () => {
    refused(config('"oops"'), /product_info must be an object, not a string/)();
    refused(config('{"build_tree_dirty": "yes"}'), /product_info\.build_tree_dirty must be true or false, not a string/)();
    refused(config('{"id": 7}'), /product_info\.id must be a string, not a number/)();
    refused(config('{"components": [{"id": 1, "version": "2"}]}'), /product_info\.components\[0\]\.id must be a string, not a number/)();
    refused(config('{"components": {"id": "a"}}'), /product_info\.components must be an array, not an object/)();
    refused(config('{"components": ["linux"]}'), /product_info\.components\[0\] must be an object, not a string/)();
    refused(config(undefined, { name: '5' }), /payloads\[0\]\.name must be a string, not a number/)();
    refused(config(undefined, { size: '"24"' }), /payloads\[0\]\.size must be an integer, not a string/)();
    refused(config(undefined, { hash_chunk_size: 'true' }), /payloads\[0\]\.hash_chunk_size must be an integer, not a boolean/)();
    refused(config(undefined, { chunk_hashes_sha256: `["${H}", 1, "${H}"]` }), /payloads\[0\]\.chunk_hashes_sha256\[1\] must be a string, not a number/)();
    refused(config(undefined, { chunk_hashes_sha256: `"${H}"` }), /payloads\[0\]\.chunk_hashes_sha256 must be an array, not a string/)();
    refused(Buffer.from('{"format_version": 1, "payloads": []}'), /format_version must be a string, not a number/)();
    refused(Buffer.from('{"format_version": "1", "payloads": {}}'), /payloads must be an array, not an object/)();
    refused(Buffer.from('{"format_version": "1", "payloads": ["system"]}'), /payloads\[0\] must be an object, not a string/)();
  });

  it('refuses integer fields written as fractions or exponents, or beyond int64, as Go decoding into int64 does', () => {
    for (const form of ['2.4e1', '24.0', '24e0', '2.4E1', '-0.0'])
      refused(config(undefined, { size: form }), new RegExp(`payloads\\[0\\]\\.size must be an integer, not ${form.replace('.', '\\.')}`))();
    refused(config(undefined, { hash_chunk_size: '8.0' }), /payloads\[0\]\.hash_chunk_size must be an integer, not 8\.0/)();
    refused(config(undefined, { size: '9223372036854775808' }), /payloads\[0\]\.size 9223372036854775808 does not fit in a signed 64-bit integer/)();
    // Within int64 the decoding succeeds; the checks after it then refuse the size.
    refused(config(undefined, { size: '-9223372036854775808' }), /payloads\[0\]: size -9\d+ is not a non-negative integer/)();
    assert.equal(parseOsImageConfig(config(undefined, { size: '24' }), manifest).payloads[0]!.size, 24);
  });

  it('accepts what the format reader accepts: unknown keys, null, keys in another case, repeated keys', () => {
    const c = parseOsImageConfig(
      config('{"id": "t", "architecture": 5, "build_tree_dirty": null, "Name": "N"}', { extra: '[1.5, {"x": null}]' }, ', "annotations": {"a": 1}'),
      manifest,
    ).config;
    assert.deepEqual(c.product_info, { id: 't', name: 'N', version: '', variant: '', commit_hash: '', commit_date: '', build_tree_dirty: false });
    assert.equal(parseOsImageConfig(config('null'), manifest).config.product_info.id, '');
    // A repeated key decodes again into what the first one left: objects merge.
    const merged = parseOsImageConfig(config('{"id": "t"}', {}, ', "product_info": {"version": "2", "components": []}'), manifest).config.product_info;
    assert.deepEqual([merged.id, merged.version, merged.components], ['t', '2', []]);
    refused(config('{"id": "t"}', {}, ', "PRODUCT_INFO": {"build_tree_dirty": 1}'), /product_info\.build_tree_dirty must be true or false, not a number/)();
    refused(config(undefined, { SIZE: '2.4e1' }), /payloads\[0\]\.size must be an integer, not 2\.4e1/)();
    // Go's folding matches ſ to s and the Kelvin sign to k.
    const folded = parseOsImageConfig(config(undefined, { size: '0', hash_chunk_size: '1', ſize: '24', 'hash_chun\u212a_size': '8' }), manifest).payloads[0]!;
    assert.deepEqual([folded.size, folded.hashChunkSize], [24, 8]);
  });

  it('refuses a manifest whose descriptors do not decode as image-spec descriptors, and negative or non-integer sizes up front', () => {
    const m = (layers: string, cfg = JSON.stringify(cfgDesc)) =>
      Buffer.from(
        `{"schemaVersion": 2, "mediaType": "${MediaType.ociManifest}", "artifactType": "${OS_IMAGE_ARTIFACT_TYPE}", "config": ${cfg}, "layers": ${layers}}`,
      );
    const bad = (bytes: Buffer, message: RegExp) =>
      assert.throws(
        () => parseOsImageManifest(bytes),
        (e: OciError) => e.code === 'INVALID_FORMAT' && message.test(e.message),
      );
    const l = (size: string, more = '') => `[{"mediaType": "${MediaType.zstd}", "digest": "${layer.digest}", "size": ${size}${more}}]`;
    bad(m(l('-1')), /layers\[0\]\.size -1 is negative/);
    bad(m(l('1.5')), /layers\[0\]\.size must be an integer, not 1\.5/);
    bad(m(l('1e3')), /layers\[0\]\.size must be an integer, not 1e3/);
    bad(m(l('"10"')), /layers\[0\]\.size must be an integer, not a string/);
    bad(m(l('10'), JSON.stringify({ ...cfgDesc, size: -1 })), /config\.size -1 is negative/);
    bad(
      m(l('10', ', "annotations": {"org.opencontainers.image.title": 1}')),
      /layers\[0\]\.annotations\["org\.opencontainers\.image\.title"\] must be a string, not a number/,
    );
    bad(m(l('10', ', "data": "QQ"')), /layers\[0\]\.data is not padded base64/);
    bad(m(l('10', ', "platform": "linux"')), /layers\[0\]\.platform must be an object, not a string/);
    bad(m('{}'), /layers must be an array, not an object/);
    assert.equal(parseOsImageManifest(m(l('10', ', "data": "QQ==", "x-unknown": [1.5]'))).layers[0]!.size, 10);
  });

  it('verify refuses such a config and a negative layer size before reading any payload', async (t) => {
    const root = await tempDir(t);
    const img = await buildImage(root, { compression: 'none', size: 100 * KiB });
    /** Rewrites manifest (and config) text and index.json so every digest matches. */
    const rewrite = async (editManifest: (m: string) => string, editConfig: (c: string) => string = (c) => c): Promise<void> => {
      const manifest = JSON.parse(await readFile(blobPath(img.dir, img.digest), 'utf8'));
      const cfg = Buffer.from(editConfig(await readFile(blobPath(img.dir, manifest.config.digest), 'utf8')));
      await writeFile(blobPath(img.dir, sha256(cfg)), cfg);
      manifest.config = { ...manifest.config, digest: sha256(cfg), size: cfg.length };
      const m = Buffer.from(editManifest(canonicalJson(manifest).toString('utf8')));
      await writeFile(blobPath(img.dir, sha256(m)), m);
      const index = JSON.parse(await readFile(join(img.dir, 'index.json'), 'utf8'));
      index.manifests[0] = { ...index.manifests[0], digest: sha256(m), size: m.length };
      await writeFile(join(img.dir, 'index.json'), canonicalJson(index));
    };
    const original = await readFile(join(img.dir, 'index.json'));

    await rewrite(
      (m) => m,
      (c) => c.replace(/"build_tree_dirty": false/, '"build_tree_dirty": "yes"'),
    );
    let r = await runCli(['verify', img.location]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /product_info\.build_tree_dirty must be true or false, not a string/);

    await writeFile(join(img.dir, 'index.json'), original);
    const system = img.payloads.find((p) => p.name === 'system')!;
    await rewrite((m) => m.replace(`"size": ${system.blobSize}`, `"size": -${system.blobSize}`));
    r = await runCli(['verify', img.location, '--json']);
    assert.equal(r.code, 5, r.stderr);
    const err = JSON.parse(r.stdout).error;
    assert.equal(err.code, 'INVALID_FORMAT');
    assert.match(err.message, new RegExp(`layers\\[0\\]\\.size -${system.blobSize} is negative`));
    assert.doesNotMatch(err.message, /chunk 0/);
  });
});
