/**
 * RPM packages, through the `rpm` program (the rpmdb is a Berkeley DB,
 * ndb or SQLite file no one else should parse), and Nix store paths.
 */
import { spawn, spawnSync } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { OciError } from '../../errors.js';
import { checkedDbPath, findInTree, type PackageDb, type PackageRecord, pathsIn } from './db-path.js';
import type { ScannedTree } from './tree-scan.js';

/** Where rpm keeps its database (older and newer layouts). */
const RPMDB_DIRS = ['var/lib/rpm', 'usr/lib/sysimage/rpm'];
const NIX_STORE = 'nix/store';

function rpmOnPath(): boolean {
  return spawnSync('sh', ['-c', 'command -v rpm'], { stdio: 'ignore' }).status === 0;
}

/**
 * The packages of the tree's rpm database; undefined when it has none.
 * Without `rpm` on PATH, a warning says the files are grouped by directory.
 */
export async function readRpm(tree: ScannedTree, warnings: string[]): Promise<PackageDb | undefined> {
  const dir = RPMDB_DIRS.find((d) => {
    const i = tree.find(d);
    return i !== undefined && tree.isDirectory(i) && ['Packages', 'rpmdb.sqlite', 'Packages.db'].some((f) => tree.find(`${d}/${f}`) !== undefined);
  });
  if (!dir) return undefined;
  if (!rpmOnPath()) {
    warnings.push(
      `${dir}: an rpm database, but rpm is not on PATH; the files of rpm packages are grouped by directory instead (install rpm to layer by package)`,
    );
    return undefined;
  }
  const root = await realpath(tree.root);
  // The database where the tree has it: rpm's own default differs between distributions (Debian's
  // is ~/.rpmdb, below the root, where a tree has nothing, and rpm then lists nothing without a word).
  // `=NAME` repeats the one name on every file's line; a bare scalar in an array iteration is an error.
  const child = spawn('rpm', ['--root', root, '--dbpath', `/${dir}`, '-qa', '--qf', '[%{=NAME}\\t%{FILENAMES}\\n]'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const byName = new Map<string, number[]>();
  let n = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    n++;
    const tab = line.indexOf('\t');
    if (tab <= 0) continue;
    const name = line.slice(0, tab);
    const path = checkedDbPath(line.slice(tab + 1), `rpm --root ${root} -qa`, n, true);
    let p = byName.get(name);
    if (!p) byName.set(name, (p = []));
    const i = path === '' ? undefined : findInTree(tree, path);
    if (i !== undefined) p.push(i);
  }
  const code = await exited;
  if (code !== 0)
    throw new OciError('INPUT_UNREADABLE', `cannot read the rpm database of ${tree.root}: ${stderr.trim().split('\n')[0] || `rpm exited with ${code}`}`);
  const packages: PackageRecord[] = [...byName].map(([name, entries]) => ({ name, entries: Uint32Array.from(entries) }));
  return { kind: 'rpm', file: dir, packages: packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}

/** Each entry directly in `nix/store` (`HASH-NAME`): one component with everything below it. */
export function readNixStore(tree: ScannedTree): PackageDb | undefined {
  const prefix = `${NIX_STORE}/`;
  const packages: PackageRecord[] = [];
  for (const p of pathsIn(tree, NIX_STORE)) {
    const rest = p.slice(prefix.length);
    if (/^[0-9a-z]{32}-/.test(rest)) packages.push({ name: rest, entries: Uint32Array.of(tree.find(p)!) });
  }
  return packages.length > 0 ? { kind: 'nix', file: NIX_STORE, packages } : undefined;
}
