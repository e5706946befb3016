/**
 * Extended attributes through the `attr` tools, as Node.js has no xattr
 * API: a tree's are read with one `getfattr -R` run when getfattr is
 * installed (without it layers carry no xattrs from directories; xattrs in
 * tar inputs are always kept), and unpack restores them with setfattr.
 */
import { spawn, spawnSync } from 'node:child_process';
import { relative } from 'node:path';
import { OciError } from '../errors.js';

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

/** Undoes getfattr's octal escapes (`\012`, `\\`) in file names. */
function unescapeName(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length + 0 && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodeValue(v: string | undefined): Buffer {
  if (v === undefined || v === '') return Buffer.alloc(0);
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64');
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(v.slice(1, -1), 'utf8');
  return Buffer.from(v, 'utf8');
}

/**
 * Every extended attribute below `root`, keyed by path relative to root
 * (symlinks not followed). Empty when getfattr is missing.
 */
export async function readTreeXattrs(root: string): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  if (!canReadXattrs()) return out;
  const text = await new Promise<string>((resolve, reject) => {
    const p = spawn('getfattr', ['-R', '-d', '-h', '-m', '-', '-e', 'base64', '--absolute-names', root], { stdio: ['ignore', 'pipe', 'pipe'] });
    const parts: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => parts.push(c));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      // getfattr exits 1 when some file has no xattr support; only a crash with no output is fatal.
      if (code !== 0 && parts.length === 0 && err.trim()) reject(new OciError('INPUT_UNREADABLE', `cannot read extended attributes below ${root}: ${err.trim().split('\n')[0]}`));
      else resolve(Buffer.concat(parts).toString('utf8'));
    });
  });
  let current: Map<string, Buffer> | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      const rel = relative(root, unescapeName(line.slice(8))).split('\\').join('/');
      current = new Map();
      out.set(rel, current);
    } else if (current && line && !line.startsWith('#')) {
      const eq = line.indexOf('=');
      current.set(eq < 0 ? line : line.slice(0, eq), decodeValue(eq < 0 ? undefined : line.slice(eq + 1)));
    }
  }
  return out;
}
