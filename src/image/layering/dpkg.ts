/**
 * Debian packages from the dpkg database of a tree: `var/lib/dpkg/status`
 * (one stanza per package: `Package`, `Status`, `Version`, `Architecture`)
 * and, for each installed package, `var/lib/dpkg/info/NAME.list` (or
 * `NAME:ARCH.list` for multi-arch packages), one absolute path a line.
 * The package's other `info/` files (md5sums, maintainer scripts) belong
 * to it too, so an update of the package changes only its component.
 */
import { OciError } from '../../errors.js';
import { checkedDbPath, entriesAt, type PackageDb, type PackageRecord, pathsIn, readDbFile, treeHasFile } from './db-path.js';
import type { ScannedTree } from './tree-scan.js';

const STATUS = 'var/lib/dpkg/status';
const INFO = 'var/lib/dpkg/info';
/** `Status` states (the third word) in which a package has files on disk. */
const onDisk = new Set(['installed', 'half-installed', 'unpacked', 'half-configured', 'triggers-awaited', 'triggers-pending']);

interface Stanza {
  fields: Map<string, string>;
  line: number;
}

/** Splits a control file into stanzas; throws INVALID_FORMAT at the first line that is neither a field nor a continuation. */
export function parseControl(text: string, file: string): Stanza[] {
  const out: Stanza[] = [];
  let cur: Stanza | undefined;
  let last: string | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') {
      cur = undefined;
      last = undefined;
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!cur || last === undefined) throw new OciError('INVALID_FORMAT', `${file}: line ${i + 1} continues no field; the status file is corrupt`);
      continue; // continuation lines (Description, Conffiles) carry nothing layering needs
    }
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*):(.*)$/.exec(line);
    if (!m) throw new OciError('INVALID_FORMAT', `${file}: line ${i + 1} is not a "Field: value" line; the status file is corrupt`);
    if (!cur) out.push((cur = { fields: new Map(), line: i + 1 }));
    last = m[1]!.toLowerCase();
    cur.fields.set(last, m[2]!.trim());
  }
  return out;
}

/**
 * The files of info/ by the package they belong to: BASE.EXT (an EXT
 * without a dot) is BASE's. Grouped once, not searched for each package
 * (thousands of packages, ten times as many files).
 */
function infoFilesByPackage(names: Iterable<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of names) {
    const dot = f.lastIndexOf('.');
    if (dot < 0) continue;
    const base = f.slice(0, dot);
    const files = out.get(base);
    if (files) files.push(f);
    else out.set(base, [f]);
  }
  return out;
}

/** The installed packages of the tree's dpkg database; undefined when it has none. */
export async function readDpkg(tree: ScannedTree): Promise<PackageDb | undefined> {
  if (!treeHasFile(tree, STATUS)) return undefined;
  const stanzas = parseControl(readDbFile(tree, STATUS), STATUS);
  const infoPrefix = `${INFO}/`;
  const infoNames = new Set(pathsIn(tree, INFO).map((p) => p.slice(infoPrefix.length)));
  const infoFiles = infoFilesByPackage(infoNames);
  const packages: PackageRecord[] = [];
  for (const s of stanzas) {
    const name = s.fields.get('package');
    const status = s.fields.get('status');
    if (!name || !/^[a-z0-9][a-z0-9+.-]*$/.test(name))
      throw new OciError('INVALID_FORMAT', `${STATUS}: the stanza at line ${s.line} has no valid Package field; the status file is corrupt`);
    if (status?.split(/\s+/).length !== 3)
      throw new OciError('INVALID_FORMAT', `${STATUS}: package ${name} (line ${s.line}) has no valid Status field; the status file is corrupt`);
    if (!onDisk.has(status.split(/\s+/)[2]!)) continue;
    const arch = s.fields.get('architecture');
    const base = infoNames.has(`${name}:${arch}.list`) ? `${name}:${arch}` : name;
    const list = `${INFO}/${base}.list`;
    const paths: string[] = [];
    if (infoNames.has(`${base}.list`)) {
      const lines = readDbFile(tree, list).split('\n');
      for (let i = 0; i < lines.length; i++) {
        if (lines[i] === '') continue;
        const p = checkedDbPath(lines[i]!, list, i + 1, true);
        if (p !== '') paths.push(p);
      }
    }
    for (const f of infoFiles.get(base) ?? []) paths.push(`${INFO}/${f}`);
    // A multi-arch package installed for two architectures is two components.
    const component = base === name ? name : base;
    packages.push({ name: component, version: s.fields.get('version'), entries: entriesAt(tree, paths) });
  }
  return { kind: 'deb', file: STATUS, packages };
}
