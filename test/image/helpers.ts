/** Fixture trees and tree comparison for the image tests. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, link, lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { END_OF_ARCHIVE, encodeTarHeader, paddingFor, type TarEntry } from '../../src/image/tar/header.js';
import { pseudoRandom } from '../helpers/cli.js';

export const isRoot = process.getuid?.() === 0;

/**
 * Writes the fixture tree: files, nested and empty directories, relative and
 * absolute symlinks, a hard link pair, an executable, a setuid file, a sticky
 * directory, a long (pax) name, a non-ASCII name, a FIFO and (as root) a
 * file with another owner. Every mtime is set to `mtime` seconds.
 */
export async function makeTree(root: string, mtime: number, variant = ''): Promise<void> {
  await mkdir(join(root, 'usr', 'bin'), { recursive: true });
  await mkdir(join(root, 'etc', 'app'), { recursive: true });
  await mkdir(join(root, 'var', 'empty'), { recursive: true });
  await mkdir(join(root, 'tmp'), { recursive: true });
  await writeFile(join(root, 'etc', 'app', 'config.toml'), `name = "fixture"\n${variant}`);
  await writeFile(join(root, 'usr', 'bin', 'tool'), '#!/bin/sh\necho tool\n');
  await chmod(join(root, 'usr', 'bin', 'tool'), 0o755);
  await writeFile(join(root, 'usr', 'bin', 'suid'), 'setuid program\n');
  await chmod(join(root, 'usr', 'bin', 'suid'), 0o4755);
  await chmod(join(root, 'tmp'), 0o1777);
  await writeFile(join(root, 'usr', 'bin', 'data.bin'), pseudoRandom(300_000, 7));
  await link(join(root, 'usr', 'bin', 'tool'), join(root, 'usr', 'bin', 'tool-hardlink'));
  await symlink('tool', join(root, 'usr', 'bin', 'tool-link'));
  await symlink('/etc/app/config.toml', join(root, 'etc', 'config-abs'));
  const long = join(root, 'usr', 'share', 'a-directory-name-that-is-long-enough', 'to-push-the-whole-path-past-the-ustar-limits-of-one-hundred-bytes');
  await mkdir(long, { recursive: true });
  await writeFile(join(long, 'file-with-a-long-name-too.txt'), 'long\n');
  await writeFile(join(long, `name-${'n'.repeat(110)}`), 'a name only pax can hold\n');
  await symlink(`../share/${'t'.repeat(120)}`, join(root, 'usr', 'bin', 'long-target'));
  await writeFile(join(root, 'etc', 'grüße.txt'), 'unicode\n');
  await writeFile(join(root, 'etc', 'readonly'), 'ro\n');
  await chmod(join(root, 'etc', 'readonly'), 0o444);
  spawnSync('mkfifo', [join(root, 'tmp', 'fifo')]);
  if (isRoot) {
    await chown(join(root, 'etc', 'app', 'config.toml'), 1234, 5678);
    await mkdir(join(root, 'dev'));
    const r = spawnSync('mknod', ['-m', '0666', join(root, 'dev', 'null'), 'c', '1', '3']);
    if (r.status !== 0) throw new Error(`mknod: ${r.stderr}`);
  }
  await setAllMtimes(root, mtime);
}

/** Sets every mtime (symlinks included) below and of `root`. */
export async function setAllMtimes(root: string, seconds: number): Promise<void> {
  const { lutimes } = await import('node:fs/promises');
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = join(root, e.name);
    if (e.isDirectory()) await setAllMtimes(p, seconds);
    await lutimes(p, seconds, seconds);
  }
  await utimes(root, seconds, seconds);
}

/** One path of a tree as compared. */
export interface Snap {
  type: string;
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  sha256?: string;
  target?: string;
  /** Other paths sharing the inode (hard links), sorted. */
  links?: string[];
}

/** Describes every path below `root` (not root itself). */
export async function snapshot(root: string, opts: { mtimes?: boolean; owners?: boolean } = {}): Promise<Record<string, Snap>> {
  const out: Record<string, Snap> = {};
  const inodes = new Map<string, string[]>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const rel = prefix + name;
      const st = await lstat(p);
      const type = st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFile()
            ? 'file'
            : st.isFIFO()
              ? 'fifo'
              : st.isCharacterDevice()
                ? `char ${st.rdev}`
                : st.isBlockDevice()
                  ? `block ${st.rdev}`
                  : 'other';
      const s: Snap = { type, mode: st.mode & 0o7777 };
      if (type === 'symlink') s.mode = 0;
      if (opts.owners) {
        s.uid = st.uid;
        s.gid = st.gid;
      }
      if (opts.mtimes && type !== 'symlink') s.mtime = Math.floor(st.mtimeMs / 1000);
      if (type === 'file')
        s.sha256 = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
      if (type === 'symlink') s.target = await readlink(p);
      if (type === 'file' && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        inodes.set(key, [...(inodes.get(key) ?? []), rel]);
      }
      out[rel] = s;
      if (type === 'dir') await walk(p, `${rel}/`);
    }
  };
  await walk(root, '');
  for (const paths of inodes.values()) for (const p of paths) out[p]!.links = [...paths].sort();
  return out;
}

/** A tar archive of `entries`, built by hand from the header and padding encoders. */
export function tarOf(entries: Array<{ entry: TarEntry; body?: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const { entry, body } of entries) {
    parts.push(encodeTarHeader(entry));
    if (body) parts.push(body, Buffer.alloc(paddingFor(body.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** Names, types and link targets of a tar as Python reads them with surrogateescape, as bytes (latin1 text). */
export function pythonList(file: string): string[][] {
  const py = spawnSync(
    'python3',
    [
      '-c',
      `
import json, sys, tarfile
b = lambda s: s.encode('utf-8', 'surrogateescape').decode('latin1')
with tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape') as t:
    print(json.dumps([[b(m.name), m.type.decode(), b(m.linkname)] for m in t], ensure_ascii=True))
`,
      file,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(py.status, 0, py.stderr);
  return JSON.parse(py.stdout);
}
