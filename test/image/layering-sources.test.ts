import assert from 'node:assert/strict';
import { link, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type PackUnit, packUnits } from '../../src/image/layering/pack.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { assertPlanInvariants, assertUnpacksEqual, buildJson, readLayers } from './layering-helpers.js';

async function put(root: string, rel: string, body: string | Buffer = `${rel}\n`): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), body);
}

const EPOCH = ['--source-date-epoch', '1700000000'];

test('apk, pacman and Nix-shaped trees: each package or store path a component; a file larger than everything else alone', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  // apk
  await put(
    tree,
    'lib/apk/db/installed',
    'C:Q1abc\nP:musl\nV:1.2.5-r0\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r2\nF:bin\nR:busybox\nF:etc\nR:busybox-paths\n\n',
  );
  for (const f of ['lib/ld-musl-x86_64.so.1', 'bin/busybox', 'etc/busybox-paths']) await put(tree, f);
  await link(join(tree, 'lib/ld-musl-x86_64.so.1'), join(tree, 'lib/libc.musl-x86_64.so.1'));
  // pacman
  await put(tree, 'var/lib/pacman/local/zlib-1:1.3.1-2/desc', '%NAME%\nzlib\n\n%VERSION%\n1:1.3.1-2\n\n');
  await put(tree, 'var/lib/pacman/local/zlib-1:1.3.1-2/files', '%FILES%\nusr/\nusr/lib/\nusr/lib/libz.so.1\n\n');
  await put(tree, 'var/lib/pacman/local/pcre2-10.43-1/files', '%FILES%\nusr/lib/libpcre2-8.so\n\n');
  await put(tree, 'usr/lib/libz.so.1');
  await put(tree, 'usr/lib/libpcre2-8.so');
  // Nix
  await put(tree, 'nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12/bin/hello');
  await put(tree, 'nix/store/1123456789abcdfghijklmnpqrsvwxyz-glibc-2.39/lib/libc.so.6');
  // unclaimed, and one file larger than everything else
  await put(tree, 'srv/data/big.img', pseudoRandom(17 << 20, 3));
  await put(tree, 'srv/data/small.txt');

  const layout = join(dir, 'out');
  const r = await buildJson(['--rootfs', tree, '--layering', 'components', ...EPOCH, '-o', `oci:${layout}:v1`]);
  const layers = await readLayers(layout, 'v1');
  assertPlanInvariants(layers);
  const all = layers.flatMap((l) => l.components).sort();
  for (const c of [
    'apk:musl',
    'apk:busybox',
    'pacman:zlib',
    'pacman:pcre2',
    'nix:0123456789abcdfghijklmnpqrsvwxyz-hello-2.12',
    'nix:1123456789abcdfghijklmnpqrsvwxyz-glibc-2.39',
    'file:srv/data/big.img',
    'dir:srv/data',
  ])
    assert.ok(all.includes(c), `${c} in ${all.join(' ')}`);
  const big = layers.find((l) => l.components.includes('file:srv/data/big.img'))!;
  assert.deepEqual(big.components, ['file:srv/data/big.img'], 'the large file is a layer of its own');
  const musl = layers.find((l) => l.components.includes('apk:musl'))!;
  assert.ok(musl.entries.has('lib/libc.musl-x86_64.so.1') && musl.entries.has('lib/ld-musl-x86_64.so.1'));
  const hello = layers.find((l) => l.components.includes('nix:0123456789abcdfghijklmnpqrsvwxyz-hello-2.12'))!;
  assert.ok(hello.entries.has('nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12/bin/hello'));
  assert.equal(r.layers.length, layers.length);
  await assertUnpacksEqual(dir, layout, 'v1', tree);

  // --max-layers 2: the large file keeps its layer, everything else shares the other.
  const two = await buildJson(['--rootfs', tree, '--layering', 'components', '--max-layers', '2', ...EPOCH, '-o', `oci:${layout}:two`]);
  assert.equal(two.layers.length, 2);
  assertPlanInvariants(await readLayers(layout, 'two'));
  const one = await buildJson(['--rootfs', tree, '--layering', 'components', '--max-layers', '1', ...EPOCH, '-o', `oci:${layout}:one`]);
  assert.equal(one.layers.length, 1);
  await assertUnpacksEqual(dir, layout, 'one', tree);
});

test('packing: at most the budget; a large unit alone; one added unit changes few layers', () => {
  const units: PackUnit[] = [];
  let x = 7;
  for (let i = 0; i < 400; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    units.push({ name: `deb:pkg${String(i).padStart(3, '0')}`, bytes: 2 ** (12 + (x % 12)), volatile: false });
  }
  units.push({ name: 'dir:etc', bytes: 50_000, volatile: true }, { name: 'dir:var/lib', bytes: 900_000, volatile: true });
  units.push({ name: 'deb:huge', bytes: 1 << 30, volatile: false });
  const key = (us: PackUnit[], bins: number[][]) =>
    new Set(
      bins.map((b) =>
        b
          .map((u) => us[u]!.name)
          .sort()
          .join(' '),
      ),
    );
  const before = packUnits(units, 64);
  assert.ok(before.length <= 64);
  assert.ok(before.some((b) => b.length === 1 && units[b[0]!]!.name === 'deb:huge'));
  assert.ok(
    before.every((b) => b.every((u) => units[u]!.volatile) || b.every((u) => !units[u]!.volatile)),
    'volatile units never share a layer with packages',
  );
  // What a changed small unit drags into an update with --previous: the rest of its run (pack.ts).
  // Measured 0.66 MiB for units under 64 KiB and 1.25 MiB under 256 KiB, of 1.5 GiB.
  const runBytes = (b: number[]) => b.reduce((s, u) => s + units[u]!.bytes, 0);
  for (const [small, most] of [
    [64 << 10, 1 << 20],
    [256 << 10, 2 << 20],
  ] as const) {
    const worst = Math.max(...before.filter((b) => b.some((u) => !units[u]!.volatile && units[u]!.bytes < small)).map(runBytes));
    assert.ok(worst <= most, `a unit under ${small} bytes shares a run of ${worst} bytes`);
  }
  const added = [...units, { name: 'deb:pkg150a', bytes: 20_000, volatile: false }];
  const after = key(added, packUnits(added, 64));
  const old = key(units, before);
  const changed = [...old].filter((b) => !after.has(b)).length;
  assert.ok(changed <= 3, `adding one package changed ${changed} of ${old.size} layers`);
  for (const budget of [1, 2, 3, 250]) assert.ok(packUnits(units, budget).length <= budget);
  // Each unit removed (or added: the same pair the other way) in turn. Most change their own layer
  // and at most the next; when the total cost crosses a power of √2 the target moves and a whole
  // list of runs is cut again (see pack.ts): measured 65 of 403 here, up to 38 layers.
  const counts = units
    .map((_, i) => {
      const less = units.filter((_, j) => j !== i);
      const now = key(less, packUnits(less, 64));
      return [...old].filter((b) => !now.has(b)).length;
    })
    .sort((x, y) => x - y);
  assert.ok(counts[counts.length >> 1]! <= 2, `median layers changed ${counts[counts.length >> 1]}`);
  const many = counts.filter((c) => c > 5).length;
  assert.ok(many <= units.length / 5, `${many} of ${units.length} single changes move more than 5 layers`);
});
