/**
 * Reading tar archives (ustar, POSIX pax, GNU long names) as a stream of
 * entries, for tar inputs and for unpacking layers. Written here rather
 * than taken from tar-stream because tar-stream decodes pax values as
 * UTF-8 text, which corrupts binary extended attributes such as
 * `security.capability`; here every pax value stays bytes. Headers are
 * checked by their checksum and their numbers must parse (a size that does
 * not would misplace every later header). Memory: one header, the pax and
 * long-name data of one entry (16 MiB at most), the global pax records
 * (1 MiB at most), and the piece of content being passed on.
 * Names and link targets are bytes too (a Linux file name is any bytes but
 * `/` and NUL): an entry carries them as text, and its exact bytes in
 * `rawName`/`rawLinkname` when they are not UTF-8 (the text, with U+FFFD in
 * their place, is then for messages and excludes only). Pax `path`
 * and `linkpath` values are UTF-8 unless `hdrcharset=BINARY` says they are
 * bytes in no known encoding (libarchive and Python write it for such
 * names; GNU tar writes their bytes without it, in pax records, GNU long
 * names and ustar fields alike): either way the bytes are the name, so they
 * are taken as they are and decoded for the text form only.
 */
import { isUtf8 } from 'node:buffer';
import { OciError } from '../../errors.js';
import { ByteReader } from '../byte-reader.js';
import { BLOCK, paddingFor, type TarEntryType } from './header.js';

/** One entry of an archive being read. */
export interface TarReadEntry {
  /** The name as stored (pax `path` and GNU long names applied), not normalized. */
  name: string;
  /** The exact bytes of `name` when they are not UTF-8 (see the top of this file). */
  rawName?: Buffer;
  /** The entry type, or `other` for types layers cannot hold (see `typeflag`). */
  type: TarEntryType | 'other';
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch; may have a fraction when pax says so. */
  mtime: number;
  linkname: string;
  /** The same for `linkname`. */
  rawLinkname?: Buffer;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.NAME` records, as bytes. */
  xattrs: Map<string, Buffer>;
  /**
   * Exactly `size` content bytes. Reading it is optional: whatever is not
   * read is skipped before the next entry.
   */
  body: AsyncIterable<Buffer>;
}

/** A component of an entry name: text, or its exact bytes when they are not UTF-8. */
export type NamePart = string | Buffer;

/** The part that `bytes` are: text when they are UTF-8 (which holds them exactly), else a copy of the bytes. */
export function namePart(bytes: Buffer): NamePart {
  return isUtf8(bytes) ? bytes.toString('utf8') : Buffer.from(bytes);
}

/**
 * The components of a name (text, or bytes when not UTF-8), empty and `.`
 * ones dropped. Bytes are split at `/` bytes and each part decoded only
 * when that is exact, so a part is `..` or `.` exactly when its bytes are:
 * checks made on the parts are made on the bytes.
 */
export function nameParts(name: string | Buffer): NamePart[] {
  if (typeof name === 'string') return name.split('/').filter((p) => p !== '' && p !== '.');
  const parts: NamePart[] = [];
  for (let start = 0; start <= name.length; ) {
    let end = name.indexOf(0x2f, start);
    if (end < 0) end = name.length;
    if (end > start) parts.push(namePart(name.subarray(start, end)));
    start = end + 1;
  }
  return parts.filter((p) => p !== '.');
}

/**
 * A key for a name or path in either form: its bytes, one char each
 * (latin1); ASCII text is its own key. Keys of paths with a common parent
 * share that parent's key as a prefix.
 */
export function nameKey(p: string | Buffer): string {
  return typeof p === 'string' ? (/^[\x00-\x7f]*$/.test(p) ? p : Buffer.from(p).toString('latin1')) : p.toString('latin1');
}

/** A name or path for messages: bytes that are not UTF-8 show as U+FFFD. */
export function shownName(p: string | Buffer): string {
  return typeof p === 'string' ? p : p.toString('utf8');
}

/** Name bytes as an entry carries them: text, plus a copy of the bytes when the text cannot hold them. */
function nameOf(bytes: Buffer): { text: string; raw?: Buffer } {
  const text = bytes.toString('utf8');
  return isUtf8(bytes) ? { text } : { text, raw: Buffer.from(bytes) };
}

const flagType: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

function cString(b: Buffer, off: number, len: number): Buffer {
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

/**
 * A numeric header field: octal digits between optional spaces, ended by a
 * NUL or the field's end (as GNU tar reads them), or GNU base-256 when the
 * high bit is set.
 * NaN when the text is not octal, the base-256 number is negative (GNU
 * marks those with bit 0x40) or too large to be exact: a size read from
 * such a field would misplace every later header.
 */
function numeric(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    if (b[off]! & 0x40) return NaN;
    let v = b[off]! & 0x3f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return Number.isSafeInteger(v) ? v : NaN;
  }
  const text = cString(b, off, len).toString('latin1').trim();
  if (!/^[0-7]*$/.test(text)) return NaN;
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = numeric(b, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** Parses pax records (`LEN key=value\n`) keeping values as bytes. */
export function parsePaxRecords(data: Buffer, what: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // padding some writers leave
    const space = data.indexOf(0x20, off);
    const len = space < 0 ? NaN : Number(data.subarray(off, space).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= space - off + 1 || off + len > data.length || data[off + len - 1] !== 0x0a) {
      throw new OciError('INVALID_FORMAT', `${what}: malformed pax extended header`);
    }
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= off + len) throw new OciError('INVALID_FORMAT', `${what}: malformed pax extended header`);
    out.set(data.subarray(space + 1, eq).toString('utf8'), data.subarray(eq + 1, off + len - 1));
    off += len;
  }
  return out;
}

/** Entry types that never carry content, whatever their size field says (as GNU tar, Python and Go read them). */
const headerOnly = new Set(['1', '2', '3', '4', '5', '6']);
/** Pax and GNU long-name data held for the next entry, all headers together: consecutive headers would otherwise grow without bound. */
const MAX_PENDING = 16 << 20;
/** Global pax records (`g`) are held for the whole archive. */
const MAX_GLOBAL = 1 << 20;
const ZEROS = Buffer.alloc(64 << 10);

function allZero(b: Buffer): boolean {
  for (let off = 0; off < b.length; off += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - off);
    if (!b.subarray(off, off + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

/**
 * Yields the entries of an uncompressed tar stream; `what` names it in
 * errors. The stream is always read to its end, past the end-of-archive
 * marker: the second zero block and the padding writers add to fill a
 * record are part of the layer its DiffID covers, and must be zeros (data
 * after the marker is refused rather than ignored). A stream that ends
 * without the marker is truncated and refused.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<TarReadEntry> {
  const reader = new ByteReader(source);
  const short = 'the archive ends in the middle of an entry';
  const take = async (n: number) => Buffer.concat(await reader.take(n, what, short));
  let globalPax = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let pending = 0; // bytes of pax and long-name data read for the next entry
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  let unread = 0; // content (with padding) of the previous entry the consumer did not read
  let first = true;
  try {
    for (;;) {
      for await (const _ of reader.pieces(unread, what, short)) {
        /* skip */
      }
      unread = 0;
      if (first && !(await reader.fill(BLOCK))) throw new OciError('INVALID_FORMAT', `${what} is not a tar archive (shorter than one header)`);
      if (await reader.atEnd()) throw new OciError('INVALID_FORMAT', `${what}: truncated: the archive ends without an end-of-archive marker`);
      const h = await take(BLOCK);
      if (h.every((x) => x === 0)) {
        for await (const c of reader.rest()) {
          if (!allZero(c)) throw new OciError('INVALID_FORMAT', `${what}: data follows the end-of-archive marker`);
        }
        return;
      }
      if (!checksumOk(h)) {
        throw new OciError(
          'INVALID_FORMAT',
          first
            ? `${what} is not a tar archive (its first header's checksum does not match)`
            : `${what}: damaged tar archive (a header checksum does not match)`,
        );
      }
      first = false;
      const flag = String.fromCharCode(h[156]!);
      const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
      const prefix = ustar ? cString(h, 345, 155) : Buffer.alloc(0);
      const ustarName = prefix.length > 0 ? Buffer.concat([prefix, Buffer.from('/'), cString(h, 0, 100)]) : cString(h, 0, 100);
      let name = ustarName.toString('utf8');
      const field = (off: number, len: number, label: string): number => {
        const n = numeric(h, off, len);
        if (Number.isNaN(n)) throw new OciError('INVALID_FORMAT', `${what}: entry "${name}" has an invalid ${label} field in its tar header`);
        return n;
      };
      let size = field(124, 12, 'size');
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (flag === 'g' ? size > MAX_GLOBAL : pending + size > MAX_PENDING) {
          throw new OciError(
            'INVALID_FORMAT',
            `${what}: ${flag === 'g' ? 'global pax headers' : 'the extended headers of one entry'} add up to more than ${flag === 'g' ? '1' : '16'} MiB`,
          );
        }
        const data = await take(size);
        await reader.take(paddingFor(size), what, short);
        if (flag === 'g') {
          globalPax = new Map([...globalPax, ...parsePaxRecords(data, what)]);
          let total = 0;
          for (const [k, v] of globalPax) total += Buffer.byteLength(k) + v.length;
          if (total > MAX_GLOBAL) throw new OciError('INVALID_FORMAT', `${what}: global pax headers add up to more than 1 MiB`);
          continue;
        }
        pending += size;
        if (flag === 'x') pax = new Map([...pax, ...parsePaxRecords(data, what)]);
        else if (flag === 'L') longName = cString(data, 0, data.length);
        else longLink = cString(data, 0, data.length);
        continue;
      }
      const records = new Map([...globalPax, ...pax]);
      pax = new Map();
      pending = 0;
      // Bytes whatever `hdrcharset` says (see the top of this file).
      const { text: fullName, raw: rawName } = nameOf(records.get('path') ?? longName ?? ustarName);
      const { text: linkname, raw: rawLinkname } = nameOf(records.get('linkpath') ?? longLink ?? cString(h, 157, 100));
      name = fullName;
      longName = longLink = undefined;
      /** A pax number overriding a header field; an empty value (a record deleting a global one) keeps the header's. */
      const paxNumber = (key: string, fallback: number, fraction = false): number => {
        const v = records.get(key);
        if (v === undefined || v.length === 0) return fallback;
        const text = v.toString('latin1');
        const n = Number(text);
        // POSIX allows a fraction in times only; a size like `1.5` or `-1` would never be read to its end.
        if (!(fraction ? /^-?\d+(\.\d+)?$/ : /^\d+$/).test(text) || !Number.isSafeInteger(Math.trunc(n))) {
          throw new OciError('INVALID_FORMAT', `${what}: entry "${name}" has an invalid pax ${key} record "${text.slice(0, 40)}"`);
        }
        // A time before 1970 (GNU tar writes them) is read as 1970: layers clamp times anyway.
        return Math.max(0, n);
      };
      size = paxNumber('size', size);
      let type: TarEntryType | 'other' = flagType[flag] ?? 'other';
      if (type === 'file' && flag !== '7' && name.endsWith('/')) type = 'directory'; // pre-POSIX archives
      const xattrs = new Map<string, Buffer>();
      for (const [k, v] of records) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice(13), v);
      // Links, devices, directories and FIFOs have no content: a size on them (some writers set one) is not followed by data.
      const contentSize = headerOnly.has(flag) ? 0 : size;
      const mode = field(100, 8, 'mode');
      const uid = paxNumber('uid', field(108, 8, 'uid'));
      const gid = paxNumber('gid', field(116, 8, 'gid'));
      // A negative base-256 time (before 1970) is read as 1970, like a negative pax one.
      const negativeTime = (h[136]! & 0xc0) === 0xc0;
      const mtime = paxNumber('mtime', negativeTime ? 0 : field(136, 12, 'mtime'), true);
      // Device numbers only mean something on devices; other writers may leave anything there.
      const device = flag === '3' || flag === '4';
      const devmajor = device ? field(329, 8, 'devmajor') : 0;
      const devminor = device ? field(337, 8, 'devminor') : 0;
      let left = contentSize;
      unread = contentSize + paddingFor(contentSize);
      const body = {
        async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
          while (left > 0) {
            for await (const piece of reader.pieces(Math.min(left, 1 << 20), what, short)) {
              left -= piece.length;
              unread -= piece.length;
              yield piece;
            }
          }
        },
      };
      yield {
        name,
        ...(rawName && { rawName }),
        type,
        typeflag: flag,
        mode,
        uid,
        gid,
        size: contentSize,
        mtime,
        linkname,
        ...(rawLinkname && { rawLinkname }),
        devmajor,
        devminor,
        xattrs,
        body,
      };
    }
  } finally {
    await reader.close();
  }
}
