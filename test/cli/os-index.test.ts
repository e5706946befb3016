/** OS image indexes: one tag for every architecture (and build variant) of an OS release. */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { requireTools } from '../helpers/tools.js';

const OS_TYPE = 'application/vnd.monogon.os.image.v1';

/** One OS image per product variant, each in its own layout `oci:ROOT/VARIANT:1.2.0`, with payloads that differ by variant. */
async function buildVariants(root: string, variants: string[]): Promise<Record<string, { location: string; digest: string; system: Buffer }>> {
  const out: Record<string, { location: string; digest: string; system: Buffer }> = {};
  for (const [i, variant] of variants.entries()) {
    const dir = join(root, 'src', variant);
    await mkdir(dir, { recursive: true });
    const system = pseudoRandom(150_000 + i * 1000, i + 7, true);
    await writeFile(join(dir, 'system.img'), system);
    await writeFile(join(dir, 'kernel.efi'), `kernel for ${variant}\n`);
    const location = `oci:${join(root, 'images', variant)}:1.2.0`;
    const r = await runCli([
      'build',
      '-p',
      `system=${join(dir, 'system.img')}`,
      '-p',
      `kernel.efi=${join(dir, 'kernel.efi')}`,
      '--hash-chunk-size',
      '64KiB',
      '--product-id',
      'myos',
      '--product-name',
      'My OS',
      '--product-version',
      '1.2.0',
      '--variant',
      variant,
      '-o',
      location,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    out[variant] = { location, digest: JSON.parse(r.stdout).digest, system };
  }
  return out;
}

test('index of OS images: platforms from the product variant or --platform, artifactType, reproducible, to layouts and archives; duplicates and unknown platforms refused in one line', async (t) => {
  const root = await tempDir(t);
  const img = await buildVariants(root, ['x86_64', 'aarch64', 'x86_64-debug', 'generic']);
  const srcs = ['x86_64', 'aarch64', 'x86_64-debug'].map((v) => img[v]!.location);

  const a = await runCli(['image', 'index', '-o', `oci:${join(root, 'multi')}:1.2.0`, ...srcs, '--json']);
  assert.equal(a.code, 0, a.stderr);
  const aj = JSON.parse(a.stdout);
  const index = JSON.parse(await readFile(join(root, 'multi', 'blobs', 'sha256', aj.digest.slice(7)), 'utf8'));
  assert.deepEqual(
    index.manifests.map((m: { platform: object }) => m.platform),
    [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
      { architecture: 'amd64', os: 'linux', variant: 'debug' },
    ],
  );
  assert.deepEqual(
    index.manifests.map((m: { digest: string }) => m.digest),
    ['x86_64', 'aarch64', 'x86_64-debug'].map((v) => img[v]!.digest),
  );
  for (const m of index.manifests) assert.equal(m.artifactType, OS_TYPE);

  // The top-level name, into an archive: the same bytes.
  const b = await runCli(['index', '-o', `oci-archive:${join(root, 'multi.tar')}:1.2.0`, ...srcs, '--json']);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(JSON.parse(b.stdout).digest, aj.digest);
  const tar1 = await readFile(join(root, 'multi.tar'));
  const again = await runCli(['index', '-o', `oci-archive:${join(root, 'multi2.tar')}:1.2.0`, ...srcs]);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(tar1.equals(await readFile(join(root, 'multi2.tar'))), 'same sources, same archive bytes');

  // --platform for a variant that names no architecture; an index as a source keeps its platforms.
  const g = await runCli([
    'index',
    '-o',
    `oci:${join(root, 'with-generic')}:1`,
    `oci:${join(root, 'multi')}:1.2.0`,
    img.generic!.location,
    '--platform',
    `${img.generic!.location}=linux/riscv64`,
    '--json',
  ]);
  assert.equal(g.code, 0, g.stderr);
  assert.deepEqual(
    JSON.parse(g.stdout).manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
    ['amd64', 'arm64', 'amd64', 'riscv64'],
  );

  // Refusals, one line each, exit code 2.
  const missing = await runCli(['index', '-o', `oci:${join(root, 'bad')}`, img.x86_64!.location, img.generic!.location]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.equal(
    missing.stderr,
    `oci-os: error: ${img.generic!.location} is an OS image whose product variant "generic" names no known architecture; give its platform with --platform ${img.generic!.location}=linux/ARCH[/VARIANT]\n`,
  );
  const dup = await runCli([
    'index',
    '-o',
    `oci:${join(root, 'bad')}`,
    img.x86_64!.location,
    img.generic!.location,
    '--platform',
    `${img.generic!.location}=linux/amd64`,
  ]);
  assert.equal(dup.code, 2, dup.stderr);
  assert.equal(
    dup.stderr,
    `oci-os: error: ${img.generic!.location} and ${img.x86_64!.location} are both images for linux/amd64; an index holds one image per platform\n`,
  );
  const dupVariant = await runCli([
    'index',
    '-o',
    `oci:${join(root, 'bad')}`,
    img['x86_64-debug']!.location,
    img.generic!.location,
    '--platform',
    `${img.generic!.location}=linux/x86_64/debug`,
  ]);
  assert.equal(dupVariant.code, 2, dupVariant.stderr);
  assert.match(dupVariant.stderr, /^oci-os: error: .* are both images for linux\/amd64\/debug; an index holds one image per platform\n$/);
  const typo = await runCli(['index', '-o', `oci:${join(root, 'bad')}`, img.x86_64!.location, '--platform', 'oci:nowhere=linux/amd64']);
  assert.equal(typo.code, 2, typo.stderr);
  assert.match(typo.stderr, /^oci-os: error: --platform oci:nowhere=…: "oci:nowhere" is not one of the SRC images/);
});

test('one image of an OS image index by --platform: inspect (entries with product and version; --format digest), verify, extract, copy; a missing platform is one line', async (t) => {
  const root = await tempDir(t);
  const img = await buildVariants(root, ['x86_64', 'aarch64', 'x86_64-debug']);
  const multi = `oci:${join(root, 'multi')}:1.2.0`;
  const made = await runCli(['index', '-o', multi, ...['x86_64', 'aarch64', 'x86_64-debug'].map((v) => img[v]!.location)]);
  assert.equal(made.code, 0, made.stderr);

  const listed = await runCli(['inspect', multi, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(
    JSON.parse(listed.stdout).summary.manifests.map((m: { platform: object; product: object; artifactType: string }) => [
      m.platform,
      m.artifactType,
      m.product,
    ]),
    [
      [{ architecture: 'amd64', os: 'linux' }, OS_TYPE, { id: 'myos', name: 'My OS', version: '1.2.0', variant: 'x86_64' }],
      [{ architecture: 'arm64', os: 'linux' }, OS_TYPE, { id: 'myos', name: 'My OS', version: '1.2.0', variant: 'aarch64' }],
      [{ architecture: 'amd64', os: 'linux', variant: 'debug' }, OS_TYPE, { id: 'myos', name: 'My OS', version: '1.2.0', variant: 'x86_64-debug' }],
    ],
  );
  const text = await runCli(['inspect', multi]);
  assert.match(text.stdout, /^MANIFEST +PLATFORM +PRODUCT +VERSION +VARIANT +SIZE$/m);
  assert.match(text.stdout, new RegExp(`^${img['x86_64-debug']!.digest} +linux/amd64/debug +My OS +1\\.2\\.0 +x86_64-debug +\\d+$`, 'm'));

  for (const [platform, variant] of [
    ['linux/arm64', 'aarch64'],
    ['linux/aarch64', 'aarch64'],
    ['linux/amd64', 'x86_64'],
    ['linux/x86_64/debug', 'x86_64-debug'],
  ] as const) {
    const f = await runCli(['inspect', multi, '--platform', platform, '--format', '{{digest}} {{productInfo.variant}}']);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stdout, `${img[variant]!.digest} ${variant}\n`, platform);
  }
  const v = await runCli(['verify', multi, '--platform', 'linux/arm64', '--json']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout).digest, img.aarch64!.digest);
  assert.equal(JSON.parse(v.stdout).manifests, 1);
  const all = await runCli(['verify', multi, '--all', '--json']);
  assert.equal(JSON.parse(all.stdout).manifests, 4);

  const x = await runCli(['extract', multi, '--platform', 'linux/amd64/debug', '-p', 'system', '-o', join(root, 'debug.img')]);
  assert.equal(x.code, 0, x.stderr);
  assert.ok((await readFile(join(root, 'debug.img'))).equals(img['x86_64-debug']!.system));

  // One platform copied on its own is a plain manifest: a layout of one OS image, as Monogon's layout reader wants.
  const c = await runCli(['copy', multi, `oci:${join(root, 'arm')}:1.2.0`, '--platform', 'linux/arm64', '--json']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).digest, img.aarch64!.digest);
  const armIndex = JSON.parse(await readFile(join(root, 'arm', 'index.json'), 'utf8'));
  assert.deepEqual(
    armIndex.manifests.map((m: { digest: string }) => m.digest),
    [img.aarch64!.digest],
  );

  const none = await runCli(['extract', multi, '--platform', 'linux/s390x', '-p', 'system', '-o', join(root, 'no.img')]);
  assert.equal(none.code, 4, none.stderr);
  assert.equal(
    none.stderr,
    `oci-os: error: ${multi} has no image for linux/s390x (it has: linux/amd64, linux/arm64, linux/amd64/debug); choose one with --platform\n`,
  );
  const wrong = await runCli(['verify', img.x86_64!.location, '--platform', 'linux/arm64']);
  assert.equal(wrong.code, 2, wrong.stderr);
  assert.equal(wrong.stderr, `oci-os: error: ${img.x86_64!.location} is an image for linux/amd64, not linux/arm64\n`);
});

/** GETs a manifest from the registry the way Monogon's reader does (its Accept names the OCI manifest type only). */
async function getManifest(
  url: string,
  repo: string,
  ref: string,
  accept = 'application/vnd.oci.image.manifest.v1+json',
): Promise<{ status: number; type: string | null; body: any }> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { accept } });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body: res.status === 200 ? JSON.parse(text) : text };
}

test('OS image index through the CNCF registry: index --push, skopeo copy --all and oci-os copy --all keep it, pull and verify by platform, the pinned digest is a plain manifest', async (t) => {
  if (!requireTools(t, 'docker-registry', 'skopeo')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);
  const img = await buildVariants(root, ['x86_64', 'aarch64', 'x86_64-debug']);
  const ref = `${reg.host}/os/myos:1.2.0`;

  const pushed = await runCli(['index', '--push', ref, ...['x86_64', 'aarch64', 'x86_64-debug'].map((v) => img[v]!.location), '--json']);
  assert.equal(pushed.code, 0, pushed.stderr);
  const digest = JSON.parse(pushed.stdout).digest as string;

  // skopeo takes every platform and keeps every image's digest and platform (it writes the index
  // itself again, compact and, before containers/image knew artifactType, without it); oci-os
  // verifies what it wrote and still picks by platform and tells the products apart.
  await skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(root, 'skopeo')}:1.2.0`]);
  const skopeoLayout = `oci:${join(root, 'skopeo')}:1.2.0`;
  const sk = await runCli(['verify', skopeoLayout, '--json']);
  assert.equal(sk.code, 0, sk.stderr);
  assert.equal(JSON.parse(sk.stdout).manifests, 4);
  assert.equal(JSON.parse(sk.stdout).payloads.length, 6);
  const ski = await runCli(['inspect', skopeoLayout, '--json']);
  assert.deepEqual(
    JSON.parse(ski.stdout).summary.manifests.map((m: { digest: string; platform: object; product: { variant: string } }) => [
      m.digest,
      m.platform,
      m.product.variant,
    ]),
    [
      [img.x86_64!.digest, { architecture: 'amd64', os: 'linux' }, 'x86_64'],
      [img.aarch64!.digest, { architecture: 'arm64', os: 'linux' }, 'aarch64'],
      [img['x86_64-debug']!.digest, { architecture: 'amd64', os: 'linux', variant: 'debug' }, 'x86_64-debug'],
    ],
  );
  const skPin = await runCli(['inspect', skopeoLayout, '--platform', 'linux/amd64/debug', '--format', '{{digest}}']);
  assert.equal(skPin.stdout, `${img['x86_64-debug']!.digest}\n`);

  const mirror = `${reg.host}/mirror/myos:1.2.0`;
  const copied = await runCli(['copy', '--all', ref, mirror, '--json']);
  assert.equal(copied.code, 0, copied.stderr);
  assert.equal(JSON.parse(copied.stdout).digest, digest);

  const pulled = await runCli(['pull', mirror, '--platform', 'linux/arm64', '-o', `oci:${join(root, 'pulled')}`, '--json']);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal(JSON.parse(pulled.stdout).digest, img.aarch64!.digest);
  const layoutIndex = JSON.parse(await readFile(join(root, 'pulled', 'index.json'), 'utf8'));
  assert.deepEqual(
    layoutIndex.manifests.map((m: { digest: string; annotations: Record<string, string> }) => [m.digest, m.annotations['org.opencontainers.image.ref.name']]),
    [[img.aarch64!.digest, '1.2.0']],
  );
  const x = await runCli(['extract', `oci:${join(root, 'pulled')}:1.2.0`, '-p', 'system', '-o', join(root, 'arm.img')]);
  assert.equal(x.code, 0, x.stderr);
  assert.ok((await readFile(join(root, 'arm.img'))).equals(img.aarch64!.system));
  const v = await runCli(['verify', mirror, '--platform', 'linux/amd64/debug', '--json']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout).digest, img['x86_64-debug']!.digest);

  // The digest an updater pins is reachable by digest as a plain OS image manifest.
  const pin = await runCli(['inspect', ref, '--platform', 'linux/arm64', '--format', '{{digest}}']);
  assert.equal(pin.code, 0, pin.stderr);
  assert.equal(pin.stdout, `${img.aarch64!.digest}\n`);
  const m = await getManifest(reg.url, 'os/myos', img.aarch64!.digest);
  assert.equal(m.status, 200);
  assert.equal(m.body.artifactType, OS_TYPE);
});

test('parallel push --index-tag of several architectures to the CNCF registry ends with every entry; a rebuild replaces its platform; refusals come before anything is pushed', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const root = await tempDir(t);
  const env = { OCI_OS_CACHE_DIR: join(root, 'cache') };
  const repo = `${reg.host}/os/parallel`;
  const variants = ['x86_64', 'aarch64', 'x86_64-debug', 'riscv64'];
  for (const v of variants) {
    await mkdir(join(root, v));
    await writeFile(join(root, v, 'system.img'), pseudoRandom(40_000, variants.indexOf(v) + 1));
  }
  const push = (v: string, extra: string[] = [], tag = '1.2.0') =>
    runCli(
      [
        'push',
        `${repo}:${tag}-${v}`,
        '-p',
        `system=${join(root, v, 'system.img')}`,
        '--variant',
        v,
        '--product-id',
        'myos',
        '--product-version',
        tag,
        '--index-tag',
        tag,
        '--json',
        ...extra,
      ],
      { env },
    );
  for (const round of [1, 2]) {
    const tag = round === 1 ? '1.2.0' : '1.2.1';
    const results = await Promise.all(variants.map((v) => push(v, [], tag)));
    const digests: Record<string, string> = {};
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, r.stderr);
      digests[variants[i]!] = JSON.parse(r.stdout).digest;
    }
    const index = await getManifest(reg.url, 'os/parallel', tag, 'application/vnd.oci.image.index.v1+json');
    assert.equal(index.status, 200);
    assert.deepEqual(
      index.body.manifests.map((m: { platform: { architecture: string; variant?: string }; digest: string; artifactType: string }) => [
        m.platform.architecture,
        m.platform.variant,
        m.digest,
        m.artifactType,
      ]),
      [
        ['amd64', undefined, digests.x86_64, OS_TYPE],
        ['amd64', 'debug', digests['x86_64-debug'], OS_TYPE],
        ['arm64', undefined, digests.aarch64, OS_TYPE],
        ['riscv64', undefined, digests.riscv64, OS_TYPE],
      ],
      `round ${round}`,
    );
  }

  // A rebuild of one architecture replaces its entry and keeps the others.
  const before = (await getManifest(reg.url, 'os/parallel', '1.2.0', 'application/vnd.oci.image.index.v1+json')).body;
  await writeFile(join(root, 'aarch64', 'system.img'), pseudoRandom(40_000, 99));
  const rebuilt = await push('aarch64');
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  const rj = JSON.parse(rebuilt.stdout);
  assert.equal(rj.index.replaced, before.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === 'arm64').digest);
  const after = (await getManifest(reg.url, 'os/parallel', '1.2.0', 'application/vnd.oci.image.index.v1+json')).body;
  assert.equal(after.manifests.length, 4);
  assert.equal(after.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === 'arm64').digest, rj.digest);
  assert.equal(
    rj.index.digest,
    `sha256:${(await import('node:crypto'))
      .createHash('sha256')
      .update(JSON.stringify(after, null, '\t') + '\n')
      .digest('hex')}`,
  );

  const generic = await runCli(
    ['push', `${repo}:generic`, '-p', `system=${join(root, 'x86_64', 'system.img')}`, '--variant', 'generic', '--index-tag', '1.2.0'],
    { env },
  );
  assert.equal(generic.code, 2, generic.stderr);
  assert.equal(
    generic.stderr,
    'oci-os: error: --index-tag needs the image\'s platform: the variant "generic" names no known architecture; give --platform OS/ARCH[/VARIANT] (e.g. linux/amd64)\n',
  );
  assert.equal((await getManifest(reg.url, 'os/parallel', 'generic')).status, 404);
  const same = await runCli(['push', `${repo}:1.2.0`, '-p', `system=${join(root, 'x86_64', 'system.img')}`, '--variant', 'x86_64', '--index-tag', '1.2.0'], {
    env,
  });
  assert.equal(same.code, 2, same.stderr);
  assert.match(same.stderr, /^oci-os: error: --index-tag 1\.2\.0 is also a tag of the image itself/);
});
