/**
 * Trees of real Debian packages for the layering tests and the benchmark:
 * the files the machine's dpkg database lists for some installed packages
 * (their `info/*.list`), copied with tar, and a dpkg database for them —
 * their stanzas of the machine's `status` file and their `info/` files.
 * Paths a list names through a symlinked directory (merged /usr: `/bin/ls`)
 * are copied at their real place, as on the machine.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const DPKG = '/var/lib/dpkg';

/** An installed package of the machine. */
export interface HostPackage {
  name: string;
  /** Its `info/` file base (NAME or NAME:ARCH). */
  base: string;
  stanza: string;
  /** Installed-Size, in KiB. */
  kib: number;
}

/** The machine's installed packages with a file list, by name. */
export function hostPackages(): Map<string, HostPackage> {
  const out = new Map<string, HostPackage>();
  if (!existsSync(join(DPKG, 'status'))) return out;
  const info = new Set(readdirSync(join(DPKG, 'info')));
  for (const stanza of readFileSync(join(DPKG, 'status'), 'utf8').split(/\n\n+/)) {
    const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(stanza)?.[1];
    const name = field('Package');
    if (!name || !/ installed$/.test(field('Status') ?? '')) continue;
    const arch = field('Architecture');
    const base = info.has(`${name}:${arch}.list`) ? `${name}:${arch}` : name;
    if (!info.has(`${base}.list`)) continue;
    out.set(name, { name, base, stanza: stanza.trim(), kib: Number(field('Installed-Size') ?? 0) });
  }
  return out;
}

/** The real paths (relative to /) a package's list names that exist, symlinked directories resolved. */
export function packagePaths(p: HostPackage): string[] {
  const out: string[] = [];
  for (const line of readFileSync(join(DPKG, 'info', `${p.base}.list`), 'utf8').split('\n')) {
    if (!line.startsWith('/') || line === '/.') continue;
    try {
      const real = join(realpathSync(dirname(line)), basename(line));
      lstatSync(real);
      out.push(real.slice(1));
    } catch {
      // listed but gone (a diverted or removed file)
    }
  }
  return out;
}

/** Copies `paths` (relative to /) from the machine into `root` with tar, metadata kept. */
export function copyFromHost(root: string, paths: string[]): void {
  const unique = [...new Set(paths)].sort();
  const r = spawnSync('sh', ['-c', `tar -C / --no-recursion --ignore-failed-read -cf - -T - 2>/dev/null | tar -C "$0" -xpf -`, root], {
    input: unique.join('\n') + '\n',
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  if (r.status !== 0) throw new Error(`copying packages failed: ${r.stderr}`);
}

/** The dpkg database of `packages` under `root`: their status stanzas and info files. */
export async function writeDpkgDatabase(root: string, packages: HostPackage[]): Promise<void> {
  const info = join(root, 'var/lib/dpkg/info');
  await mkdir(info, { recursive: true });
  await writeFile(join(root, 'var/lib/dpkg/status'), packages.map((p) => p.stanza).join('\n\n') + '\n');
  const names = readdirSync(join(DPKG, 'info'));
  const files = packages.flatMap((p) =>
    names.filter((f) => f.startsWith(`${p.base}.`) && !f.slice(p.base.length + 1).includes('.')).map((f) => `var/lib/dpkg/info/${f}`),
  );
  copyFromHost(root, files);
}

/** A tree of the named packages (those installed), with their database; returns the packages used. */
export async function makeDpkgTree(root: string, names: string[]): Promise<HostPackage[]> {
  const host = hostPackages();
  const packages = names.map((n) => host.get(n)).filter((p): p is HostPackage => p !== undefined);
  await mkdir(root, { recursive: true });
  copyFromHost(root, packages.flatMap(packagePaths));
  await writeDpkgDatabase(root, packages);
  return packages;
}
