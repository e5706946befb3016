/**
 * Alpine (apk) and Arch (pacman) package databases.
 *
 * apk: `lib/apk/db/installed`, stanzas of `K:value` lines separated by
 * blank lines; `P:` names the package, `V:` its version, `F:` a directory
 * (relative) and each `R:` a file in the last `F:` directory.
 *
 * pacman: `var/lib/pacman/local/NAME-VERSION-REL/desc` (`%NAME%` and
 * `%VERSION%` sections) and `files` (`%FILES%`, one relative path a line,
 * directories ending with `/`); the directory itself belongs to the package.
 */
import { OciError } from '../../errors.js';
import { checkedDbPath, entriesAt, type PackageDb, type PackageRecord, pathsIn, readDbFile, treeHasFile } from './db-path.js';
import type { ScannedTree } from './tree-scan.js';

const APK = 'lib/apk/db/installed';
const PACMAN = 'var/lib/pacman/local';

/** The packages of the tree's apk database; undefined when it has none. */
export async function readApk(tree: ScannedTree): Promise<PackageDb | undefined> {
  if (!treeHasFile(tree, APK)) return undefined;
  const lines = readDbFile(tree, APK).split('\n');
  const packages: PackageRecord[] = [];
  let cur: { name: string; version?: string; paths: string[] } | undefined;
  let dir: string | undefined;
  let start = 0;
  const end = () => {
    if (cur && !cur.name) throw new OciError('INVALID_FORMAT', `${APK}: the package at line ${start} has no P: line; the database is corrupt`);
    if (cur) packages.push({ name: cur.name, version: cur.version, entries: entriesAt(tree, cur.paths) });
    cur = undefined;
    dir = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') {
      end();
      continue;
    }
    if (!/^[A-Za-z]:/.test(line)) throw new OciError('INVALID_FORMAT', `${APK}: line ${i + 1} is not a "K:value" line; the database is corrupt`);
    if (!cur) {
      cur = { name: '', paths: [] };
      start = i + 1;
    }
    const key = line[0]!;
    const value = line.slice(2);
    if (key === 'P') {
      if (cur.name) throw new OciError('INVALID_FORMAT', `${APK}: line ${i + 1} names a second package in one entry; the database is corrupt`);
      if (!value) throw new OciError('INVALID_FORMAT', `${APK}: line ${i + 1} has an empty package name`);
      cur.name = value;
    } else if (key === 'V') cur.version = value;
    else if (key === 'F') {
      dir = checkedDbPath(value, APK, i + 1, false);
      if (dir !== '') cur.paths.push(dir);
    } else if (key === 'R') {
      if (dir === undefined) throw new OciError('INVALID_FORMAT', `${APK}: line ${i + 1} names a file before any F: directory`);
      const file = checkedDbPath(value, APK, i + 1, false);
      if (file === '' || file.includes('/')) throw new OciError('INVALID_FORMAT', `${APK}: line ${i + 1} names "${value}", not a file name`);
      cur.paths.push(dir === '' ? file : `${dir}/${file}`);
    }
  }
  end();
  return { kind: 'apk', file: APK, packages };
}

/** The `%SECTION%` blocks of a pacman desc or files file. */
function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of text.split('\n')) {
    const m = /^%([A-Z0-9]+)%$/.exec(line);
    if (m) out.set(m[1]!, (cur = []));
    else if (line !== '' && cur) cur.push(line);
  }
  return out;
}

/** The packages of the tree's pacman database; undefined when it has none. */
export async function readPacman(tree: ScannedTree): Promise<PackageDb | undefined> {
  const prefix = `${PACMAN}/`;
  const dirs = pathsIn(tree, PACMAN).sort();
  const packages: PackageRecord[] = [];
  for (const d of dirs) {
    if (!treeHasFile(tree, `${d}/files`)) continue;
    const filesName = `${d}/files`;
    const files = sections(readDbFile(tree, filesName));
    const desc = treeHasFile(tree, `${d}/desc`) ? sections(readDbFile(tree, `${d}/desc`)) : new Map<string, string[]>();
    const base = d.slice(prefix.length);
    const name = desc.get('NAME')?.[0] ?? base.replace(/-[^-]+-[^-]+$/, '');
    if (!name) throw new OciError('INVALID_FORMAT', `${d}: no package name in desc or in the directory name`);
    const listed = files.get('FILES') ?? [];
    const paths = listed.map((p, i) => checkedDbPath(p, filesName, i + 2, false)).filter((p) => p !== '');
    // The package's own database entry changes with it.
    paths.push(d);
    for (const f of ['desc', 'files', 'mtree', 'install', 'changelog']) if (tree.find(`${d}/${f}`) !== undefined) paths.push(`${d}/${f}`);
    packages.push({ name, version: desc.get('VERSION')?.[0], entries: entriesAt(tree, paths) });
  }
  return packages.length > 0 ? { kind: 'pacman', file: PACMAN, packages } : undefined;
}
