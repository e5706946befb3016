/**
 * Extended attributes through the `attr` tools, as Node.js has no xattr
 * API: a tree's are read with one `getfattr -R` run when getfattr is
 * installed (without it layers carry no xattrs from directories; xattrs in
 * tar inputs are always kept), and unpack restores them with setfattr.
 */
import { spawn, spawnSync } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import { fsError, OciError } from '../errors.js';
import { nameKey } from './tar/reader.js';

const available = new Map<string, boolean>();
function onPath(tool: string): boolean {
  let a = available.get(tool);
  if (a === undefined) {
    a = spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
    available.set(tool, a);
  }
  return a;
}

/** Whether getfattr is on PATH. */
export function canReadXattrs(): boolean {
  return onPath('getfattr');
}

/** Whether setfattr is on PATH. */
export function canWriteXattrs(): boolean {
  return onPath('setfattr');
}

/**
 * Undoes getfattr's escapes in a file name, giving its bytes: `\NNN` (octal,
 * for a backslash, newline and other control characters; `\134` is a
 * backslash) and `\\`. Other bytes, including ones that are not UTF-8, are
 * printed as they are, so the text is read as latin1 (one char per byte).
 */
function unescapeName(s: string): Buffer {
  const raw = Buffer.from(s, 'latin1');
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes);
}

/** A value as getfattr prints it (the line read as latin1): base64 with `-e base64`, hex or quoted text otherwise. */
function decodeValue(v: string | undefined): Buffer {
  if (v === undefined || v === '') return Buffer.alloc(0);
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64');
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(v.slice(1, -1), 'latin1');
  return Buffer.from(v, 'latin1');
}

/**
 * Attributes left out of layers: `security.selinux` is the label the build
 * machine's policy gave each file, not part of the content, and would make
 * DiffIDs differ between hosts (the runtime labels files itself). File
 * capabilities (`security.capability`), `user.*` and `trusted.*` are kept.
 */
const machineXattrs = new Set(['security.selinux']);

/**
 * Parses `getfattr -R -d -e base64 --absolute-names` output for the tree at
 * `root` (as given to getfattr) into a map keyed by nameKey (tar/reader.ts) of each
 * path relative to root ('' for root itself).
 */
export function parseXattrDump(dump: Buffer, root: string): Map<string, Map<string, Buffer>> {
  const out = new Map<string, Map<string, Buffer>>();
  const rootBytes = Buffer.from(root);
  const prefix = Buffer.from(root.endsWith('/') ? root : `${root}/`);
  let current: Map<string, Buffer> | undefined;
  for (const line of dump.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = unescapeName(line.slice(8));
      let rel: Buffer | undefined;
      if (path.equals(rootBytes)) rel = Buffer.alloc(0);
      else if (path.subarray(0, prefix.length).equals(prefix)) rel = path.subarray(prefix.length);
      current = rel === undefined ? undefined : new Map();
      if (current) out.set(nameKey(rel!), current);
    } else if (current && line && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      const name = unescapeName(eq < 0 ? line : line.slice(0, eq)).toString('utf8');
      if (!machineXattrs.has(name)) current.set(name, decodeValue(eq < 0 ? undefined : line.slice(eq + 1)));
    }
  }
  return out;
}

/**
 * Every extended attribute below `root` but the machine's own
 * (`security.selinux`), keyed by nameKey (tar/reader.ts) of the path relative to
 * root (symlinks below root not followed; a root that is itself a symlink is
 * resolved first, as getfattr -h would not enter it). Empty when getfattr is
 * missing.
 */
export async function readTreeXattrs(root: string): Promise<Map<string, Map<string, Buffer>>> {
  if (!canReadXattrs()) return new Map();
  let real: string;
  try {
    real = await realpath(root);
  } catch (err) {
    throw fsError(err, root, 'read');
  }
  const dump = await new Promise<Buffer>((resolve, reject) => {
    const p = spawn('getfattr', ['-R', '-d', '-h', '-m', '-', '-e', 'base64', '--absolute-names', real], { stdio: ['ignore', 'pipe', 'pipe'] });
    const parts: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => parts.push(c));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      // getfattr exits 1 when some file has no xattr support; only a crash with no output is fatal.
      if (code !== 0 && parts.length === 0 && err.trim())
        reject(new OciError('INPUT_UNREADABLE', `cannot read extended attributes below ${root}: ${err.trim().split('\n')[0]}`));
      else resolve(Buffer.concat(parts));
    });
  });
  return parseXattrDump(dump, real);
}
