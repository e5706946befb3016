/** Reading layered images back for the layering tests: layers, their entries, the plan invariants, unpacks. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decompress } from '../../src/image/decompress.js';
import { readTar } from '../../src/image/tar/reader.js';
import { runCli } from '../helpers/cli.js';
import { isRoot, snapshot } from './helpers.js';

export interface LayerRead {
  digest: string;
  size: number;
  annotations: Record<string, string>;
  components: string[];
  /** name → type, mode, owner, mtime, link target and xattrs. */
  entries: Map<string, string>;
}

/** The manifest a layout tag names. */
export async function layoutManifest(
  layout: string,
  tag: string,
): Promise<{ digest: string; layers: Array<{ digest: string; size: number; annotations?: Record<string, string> }> }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(desc, `tag ${tag} in ${layout}`);
  return { digest: desc.digest, ...JSON.parse(await readFile(join(layout, 'blobs', 'sha256', desc.digest.slice(7)), 'utf8')) };
}

/** Every layer of a layout image with its entries. */
export async function readLayers(layout: string, tag: string): Promise<LayerRead[]> {
  const m = await layoutManifest(layout, tag);
  const out: LayerRead[] = [];
  for (const l of m.layers) {
    const entries = new Map<string, string>();
    const blob = createReadStream(join(layout, 'blobs', 'sha256', l.digest.slice(7)));
    for await (const e of readTar(decompress(blob, l.digest), l.digest)) {
      const xattrs = [...e.xattrs].map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
      entries.set(e.name, `${e.type} ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.mtime} ${e.linkname} ${xattrs}`);
    }
    const annotations = l.annotations ?? {};
    out.push({ digest: l.digest, size: l.size, annotations, components: JSON.parse(annotations['org.oci-os.layer.components'] ?? '[]'), entries });
  }
  return out;
}

/** Every path but a directory is in exactly one layer; a directory in several carries the same metadata in each. */
export function assertPlanInvariants(layers: LayerRead[]): void {
  const seen = new Map<string, { header: string; layer: number }>();
  layers.forEach((l, i) => {
    for (const [name, header] of l.entries) {
      const before = seen.get(name);
      if (before) {
        assert.ok(name.endsWith('/'), `${name} is in layers ${before.layer} and ${i}`);
        assert.equal(header, before.header, `directory ${name} differs between layers ${before.layer} and ${i}`);
      } else seen.set(name, { header, layer: i });
    }
  });
  const names = layers.flatMap((l) => l.components);
  assert.equal(new Set(names).size, names.length, 'a component is in one layer');
}

/** umoci and image unpack both give back `tree` (modes, owners, links, hard links; mtimes are clamped by the epoch the builds use). */
export async function assertUnpacksEqual(dir: string, layout: string, tag: string, tree: string, umoci = true): Promise<void> {
  const want = await snapshot(tree, { owners: isRoot });
  if (umoci) await umociEquals(dir, layout, tag, want);
  const mine = join(dir, `unpack-${tag}`);
  const r = await runCli(['image', 'unpack', `oci:${layout}:${tag}`, mine]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await snapshot(mine, { owners: isRoot }), want, 'image unpack gives the tree');
}

/** umoci (which reads gzip layers only) unpacks a layout image to `want`. */
async function umociEquals(dir: string, layout: string, tag: string, want: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  const bundle = join(dir, `umoci-${tag}`);
  const u = spawnSync('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${layout}:${tag}`, bundle], { encoding: 'utf8' });
  assert.equal(u.status, 0, u.stderr);
  assert.deepEqual(await snapshot(join(bundle, 'rootfs'), { owners: isRoot }), want, 'umoci unpacks the tree');
}

/** Runs `image build ... --json`, asserting success; returns the report. */
export async function buildJson(
  args: string[],
): Promise<{ digest: string; layers: Array<{ digest: string; size: number; components: string[]; reused: boolean; status: string }> }> {
  const r = await runCli(['image', 'build', ...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}
