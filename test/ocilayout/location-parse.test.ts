import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { parseLocalLocation } from '../../src/ocilayout/location.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';

const d = `sha256:${'a'.repeat(64)}`;

/** The message of the INVALID_REFERENCE error parseLocalLocation throws for `input`. */
function refusal(input: string): string {
  try {
    parseLocalLocation(input);
  } catch (err) {
    assert.ok(isOciError(err, 'INVALID_REFERENCE'), `${input}: ${String(err)}`);
    return err.message;
  }
  assert.fail(`${input} was accepted`);
}

test('the path ends at the first colon, as containers/image splits it; the rest is a ref.name', () => {
  assert.deepEqual(parseLocalLocation('oci:skt:foo/bar'), { kind: 'oci', path: 'skt', tag: 'foo/bar', digest: undefined });
  assert.deepEqual(parseLocalLocation('oci-archive:a.tar:x/y/z'), { kind: 'oci-archive', path: 'a.tar', tag: 'x/y/z', digest: undefined });
  assert.deepEqual(parseLocalLocation('oci:/abs/dir:1.2.0'), { kind: 'oci', path: '/abs/dir', tag: '1.2.0', digest: undefined });
  // ':' '@' '+' and '--' are ref.name separators too.
  for (const tag of ['a:b', 'v1+build.7', 'x--y', 'A_b-c.d', 'r@1', 'sha256:abc']) assert.equal(parseLocalLocation(`oci:dir:${tag}`).tag, tag, tag);
  assert.deepEqual(parseLocalLocation('oci:dir'), { kind: 'oci', path: 'dir', tag: undefined, digest: undefined });
});

test('DIR@DIGEST names a manifest by digest; a malformed digest is refused, never read as a path', () => {
  assert.deepEqual(parseLocalLocation(`oci:dir@${d}`), { kind: 'oci', path: 'dir', tag: undefined, digest: d });
  assert.deepEqual(parseLocalLocation(`oci-archive:/x/a.tar@${d}`), { kind: 'oci-archive', path: '/x/a.tar', tag: undefined, digest: d });
  const sha512 = `sha512:${'b'.repeat(128)}`;
  assert.equal(parseLocalLocation(`oci:dir@${sha512}`).digest, sha512);
  assert.match(refusal('oci:l1@sha256:abc'), /^invalid digest "sha256:abc" in "oci:l1@sha256:abc": expected sha256:<64 lowercase hex characters>$/);
  assert.match(refusal(`oci:l1@sha256:${'A'.repeat(64)}`), /invalid digest/);
  assert.match(refusal(`oci:l1:v1@${d}`), /by tag or by digest, not both \(oci:DIR:TAG or oci:DIR@DIGEST\)/);
  // '@' elsewhere in a path is only a character.
  assert.deepEqual(parseLocalLocation('oci:me@host:v1'), { kind: 'oci', path: 'me@host', tag: 'v1', digest: undefined });
});

test('a tag outside the ref.name grammar is refused in one line that says where the path ends', () => {
  for (const bad of [
    'oci:dir:-bad',
    'oci:dir:a b',
    'oci:dir:a//b',
    'oci:dir:/a',
    'oci:dir:a/',
    'oci:dir:a..b',
    'oci:dir:_x',
    'oci:dir:a---b',
    'oci-archive:f.tar:x y',
  ]) {
    const m = refusal(bad);
    assert.match(m, /^invalid tag ".*" in ".*": the (directory|file) ends at the first ':'/, bad);
    assert.equal(m.split('\n').length, 1);
  }
  assert.match(refusal('oci:dir:'), /the tag after ':' is empty/);
  assert.match(refusal('oci::v1'), /the directory is missing/);
  assert.match(refusal('oci-archive::v1'), /the file is missing \(oci-archive:FILE\[:TAG\]\)/);
  assert.match(refusal(`oci:@${d}`), /the directory is missing/);
});

test('CLI: oci:DIR:foo/bar reads what skopeo wrote and writes what skopeo reads', async (t) => {
  if (!requireTools(t, 'skopeo')) return;
  const dir = await tempDir(t);
  await writeFile(join(dir, 'small.bin'), 'payload bytes');
  const built = await runCli(['build', '-p', `s=${join(dir, 'small.bin')}`, '-o', `oci:${join(dir, 'l1')}:v1`, '--json']);
  assert.equal(built.code, 0, built.stderr);
  await skopeo(['copy', `oci:${join(dir, 'l1')}:v1`, `oci:${join(dir, 'skt')}:foo/bar`]);
  const r = await runCli(['inspect', `oci:${join(dir, 'skt')}:foo/bar`]);
  assert.equal(r.code, 0, r.stderr);

  const out = await runCli(['build', '-p', `s=${join(dir, 'small.bin')}`, '-o', `oci:${join(dir, 'badtag')}:foo/bar`, '--quiet']);
  assert.equal(out.code, 0, out.stderr);
  assert.ok((await stat(join(dir, 'badtag'))).isDirectory());
  await assert.rejects(stat(join(dir, 'badtag:foo')), /ENOENT/);
  const index = JSON.parse(await readFile(join(dir, 'badtag', 'index.json'), 'utf8'));
  assert.deepEqual(
    index.manifests.map((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name']),
    ['foo/bar'],
  );
  const raw = JSON.parse((await skopeo(['inspect', '--raw', `oci:${join(dir, 'badtag')}:foo/bar`])).stdout);
  assert.equal(raw.artifactType, 'application/vnd.monogon.os.image.v1');

  const bad = await runCli(['build', '-p', `s=${join(dir, 'small.bin')}`, '-o', `oci:${join(dir, 'x')}:foo bar`]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr.trim(), /^oci-os: error: invalid tag "foo bar"/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  await assert.rejects(stat(join(dir, 'x')), /ENOENT/, 'nothing created');

  const digest = await runCli(['inspect', `oci:${join(dir, 'l1')}@sha256:abc`]);
  assert.equal(digest.code, 2, digest.stderr);
  assert.match(digest.stderr, /invalid digest "sha256:abc"/);
  const byDigest = await runCli(['inspect', `oci:${join(dir, 'l1')}@${JSON.parse(built.stdout).digest}`]);
  assert.equal(byDigest.code, 0, byDigest.stderr);
});
