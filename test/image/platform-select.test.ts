import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostPlatform, normalizeArchitecture, parsePlatform, platformFromProductVariant } from '../../src/image/platform.js';
import { selectFromIndex } from '../../src/image/platform-select.js';
import type { Descriptor, ImageIndex, Platform } from '../../src/oci/descriptor.js';
import { MediaType } from '../../src/oci/mediatypes.js';

const entry = (n: number, platform?: Platform, extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType: MediaType.ociManifest,
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: 100 + n,
  ...(platform ? { platform } : {}),
  ...extra,
});
const index = (...manifests: Descriptor[]): ImageIndex => ({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });

test("architectures as OS vendors spell them map to the image spec's names", () => {
  assert.equal(normalizeArchitecture('x86_64'), 'amd64');
  assert.equal(normalizeArchitecture('aarch64'), 'arm64');
  assert.equal(normalizeArchitecture('arm64'), 'arm64');
  assert.equal(normalizeArchitecture('generic'), undefined);
  assert.deepEqual(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(platformFromProductVariant('x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(platformFromProductVariant('aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(platformFromProductVariant('x86_64-debug'), { os: 'linux', architecture: 'amd64', variant: 'debug' });
  assert.equal(platformFromProductVariant('generic'), undefined);
  assert.equal(platformFromProductVariant(''), undefined);
  // A build variant such as "debug" is a platform variant only where OS images are chosen.
  assert.throws(() => parsePlatform('linux/amd64/debug'), /invalid platform variant "debug"/);
  assert.deepEqual(parsePlatform('linux/amd64/debug', { anyVariant: true }), { os: 'linux', architecture: 'amd64', variant: 'debug' });
  assert.throws(() => parsePlatform('linux/amd64/de bug', { anyVariant: true }), /invalid platform variant "de bug"/);
  assert.equal(hostPlatform().os, 'linux');
  assert.ok(normalizeArchitecture(hostPlatform().architecture), hostPlatform().architecture);
});

test("selecting from an index: the exact platform first, the only image by default, else this machine's; attestations never", () => {
  const amd = entry(1, { os: 'linux', architecture: 'amd64', variant: 'debug' });
  const amdPlain = entry(2, { os: 'linux', architecture: 'amd64' });
  const arm = entry(3, { os: 'linux', architecture: 'arm64' });
  const att = entry(4, { os: 'unknown', architecture: 'unknown' });
  const idx = index(amd, amdPlain, arm, att);
  assert.equal(selectFromIndex(idx, { os: 'linux', architecture: 'amd64' }, 'x').digest, amdPlain.digest);
  assert.equal(selectFromIndex(idx, { os: 'linux', architecture: 'amd64', variant: 'debug' }, 'x').digest, amd.digest);
  assert.equal(selectFromIndex(index(amd, arm), { os: 'linux', architecture: 'amd64' }, 'x').digest, amd.digest);
  assert.equal(selectFromIndex(idx, { os: 'linux', architecture: 'arm64' }, 'x').digest, arm.digest);
  // One image and its attestation: the image, whatever this machine is.
  assert.equal(selectFromIndex(index(arm, att), undefined, 'x').digest, arm.digest);
  const host = hostPlatform();
  const mine = entry(5, host);
  const other = entry(6, host.architecture === 'arm64' ? { os: 'linux', architecture: 'amd64' } : { os: 'linux', architecture: 'arm64' });
  assert.equal(selectFromIndex(index(other, mine), undefined, 'x').digest, mine.digest);
  assert.throws(
    () => selectFromIndex(index(arm), { os: 'linux', architecture: 's390x' }, 'reg/os:1'),
    /^OciError: reg\/os:1 has no image for linux\/s390x \(it has: linux\/arm64\); choose one with --platform$/,
  );
  assert.throws(() => selectFromIndex(index(other, other), undefined, 'reg/os:1'), /this machine's platform/);
});
