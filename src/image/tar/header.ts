/**
 * Writing tar headers in the POSIX pax interchange format (POSIX.1-2001
 * `pax`, the format image-spec layer.md names): a ustar header per entry,
 * preceded by an extended header (`x`) only when a value does not fit ustar
 * — long or non-ASCII names and link targets, large ids, sizes or times —
 * or when the entry carries extended attributes (`SCHILY.xattr.NAME`).
 * Names and link targets that are not UTF-8 are written as their bytes
 * into the ustar fields, which hold bytes and which GNU tar, Go and Python
 * (surrogateescape) read back exactly; only when too long for them do they
 * go into `path`/`linkpath` records, with `hdrcharset=BINARY`, the pax way
 * of saying a value is not UTF-8 (GNU tar ignores it, with a warning, and
 * keeps the bytes).
 * Records are written in sorted key order and every field not set is zero,
 * so equal entries always give equal bytes. uname and gname stay empty:
 * owners are numeric only.
 */
import { OciError } from '../../errors.js';

/** Entry types a layer may hold. */
export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

/** One normalized tar entry header. */
export interface TarEntry {
  /** Path relative to the root, `/`-separated, no leading `./` or `/`; directories end with `/`. */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes (files only; 0 otherwise). */
  size: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Symlink target, or for hard links the path of the first entry of the same file. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as `SCHILY.xattr.NAME` pax records. */
  xattrs?: Map<string, Buffer>;
  /**
   * The exact bytes of `name` when they are not UTF-8 (a Linux file name is
   * any bytes but `/` and NUL); `name` then shows them with U+FFFD, for
   * messages and excludes only.
   */
  rawName?: Buffer;
  /** The same for `linkname`. */
  rawLinkname?: Buffer;
}

/** Size of a tar block. */
export const BLOCK = 512;
/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

const typeFlag: Record<TarEntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

/** Bytes of zero padding that follow `size` content bytes. */
export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

const isAscii = (s: string) => /^[\x01-\x7f]*$/.test(s);

/** Whether `n` fits an octal field of `width` bytes (width-1 digits and a NUL). */
function fitsOctal(n: number, width: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n < octalLimit[width]!;
}
/** 8 ** (width - 1) for the widths of ustar's number fields, not computed each time (a pow call per field). */
const octalLimit: Record<number, number> = { 7: 8 ** 6, 8: 8 ** 7, 12: 8 ** 11 };

/** Writes `n` (0 when it does not fit) as width-1 octal digits and a NUL, digit by digit: no string per field. */
function writeOctal(buf: Buffer, off: number, width: number, n: number): void {
  let v = fitsOctal(n, width) ? n : 0;
  for (let i = off + width - 2; i >= off; i--) {
    buf[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  buf[off + width - 1] = 0;
}

/**
 * Splits a name into ustar prefix (≤155) and name (≤100) at a `/`, or
 * undefined. `bytes`: the name is raw bytes, one char each (latin1), kept as
 * they are; otherwise only ASCII names go into ustar fields.
 */
function splitUstarName(name: string, bytes = false): { prefix: string; name: string } | undefined {
  if (!bytes && !isAscii(name)) return undefined;
  if (name.length <= 100) return { prefix: '', name };
  // The prefix must end at a '/', which is not stored.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length <= 100 && rest.length > 0) return { prefix, name: rest };
    if (rest.length > 100) break;
  }
  return undefined;
}

/** One pax record: `LEN KEY=VALUE\n`, where LEN counts the whole record. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3; // ' ', '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

interface UstarFields {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}

/** The ustar block of `f`, written into `into` (its first 512 bytes) when given, else into a new buffer. */
function ustarBlock(f: UstarFields, into?: Buffer): Buffer {
  const b = into ? into.fill(0, 0, BLOCK).subarray(0, BLOCK) : Buffer.alloc(BLOCK);
  // Every text field is ASCII or raw bytes as latin1 (see splitUstarName).
  b.write(f.name, 0, 100, 'latin1');
  writeOctal(b, 100, 8, f.mode);
  writeOctal(b, 108, 8, f.uid);
  writeOctal(b, 116, 8, f.gid);
  writeOctal(b, 124, 12, f.size);
  writeOctal(b, 136, 12, f.mtime);
  b[156] = f.flag.charCodeAt(0);
  b.write(f.linkname, 157, 100, 'latin1');
  b.write('ustar\u000000', 257, 8, 'ascii');
  writeOctal(b, 329, 8, f.devmajor);
  writeOctal(b, 337, 8, f.devminor);
  b.write(f.prefix, 345, 155, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  // Six digits, a NUL and a space: the form GNU tar writes.
  writeOctal(b, 148, 7, sum);
  b[155] = 0x20;
  return b;
}

/** ASCII stand-in for a field a pax record overrides (readers without pax support see this). */
function truncatedAscii(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(0, max);
}

/** `records` with one more (a new map for the first). */
function withRecord(records: Map<string, Buffer> | undefined, key: string, value: Buffer): Map<string, Buffer> {
  return (records ?? new Map<string, Buffer>()).set(key, value);
}

/**
 * The header bytes of an entry: an optional pax extended header (with its
 * data, padded) followed by the ustar header. Content and its padding are
 * the caller's. With `scratch` (512 bytes or more), a header that needs no
 * extended header, most of them, is written into it rather than into a new
 * buffer: the bytes returned are then valid until the next use of `scratch`.
 */
export function encodeTarHeader(e: TarEntry, scratch?: Buffer): Buffer {
  if (e.type !== 'file' && e.size !== 0) throw new OciError('INTERNAL', `tar entry ${e.name}: only files have content`);
  // Most entries need no extended header: its records are gathered only when one does (the
  // writer encodes a header per entry, hundreds of thousands a build).
  let records: Map<string, Buffer> | undefined;
  const split = e.rawName ? splitUstarName(e.rawName.toString('latin1'), true) : splitUstarName(e.name);
  if (!split) records = withRecord(records, 'path', e.rawName ?? Buffer.from(e.name));
  const linkname = e.rawLinkname ? e.rawLinkname.toString('latin1') : (e.linkname ?? '');
  if ((!e.rawLinkname && !isAscii(linkname)) || linkname.length > 100) records = withRecord(records, 'linkpath', e.rawLinkname ?? Buffer.from(linkname));
  if ((e.rawName && !split) || (e.rawLinkname && records?.has('linkpath'))) records = withRecord(records, 'hdrcharset', Buffer.from('BINARY'));
  if (!fitsOctal(e.uid, 8)) records = withRecord(records, 'uid', Buffer.from(String(e.uid)));
  if (!fitsOctal(e.gid, 8)) records = withRecord(records, 'gid', Buffer.from(String(e.gid)));
  if (!fitsOctal(e.size, 12)) records = withRecord(records, 'size', Buffer.from(String(e.size)));
  if (!fitsOctal(e.mtime, 12)) records = withRecord(records, 'mtime', Buffer.from(String(e.mtime)));
  for (const [k, v] of e.xattrs ?? []) records = withRecord(records, `SCHILY.xattr.${k}`, v);
  const header = ustarBlock(
    {
      name: split ? split.name : truncatedAscii(e.name, 100),
      prefix: split ? split.prefix : '',
      mode: e.mode & 0o7777,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      mtime: e.mtime,
      flag: typeFlag[e.type],
      linkname: records?.has('linkpath') ? truncatedAscii(linkname, 100) : linkname,
      devmajor: e.devmajor ?? 0,
      devminor: e.devminor ?? 0,
    },
    records ? undefined : scratch,
  );
  if (!records) return header;
  const keys = [...records.keys()].sort();
  const data = Buffer.concat(keys.map((k) => paxRecord(k, records.get(k)!)));
  const base = e.name.replace(/\/$/, '').split('/').pop() ?? '';
  const pax = ustarBlock({
    name: truncatedAscii(`PaxHeaders/${base}`, 100),
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: fitsOctal(e.mtime, 12) ? e.mtime : 0,
    flag: 'x',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([pax, data, Buffer.alloc(paddingFor(data.length)), header]);
}
