/**
 * Reading tar archives (ustar, POSIX pax, GNU long names) as a stream of
 * entries, for tar inputs and for unpacking layers. Written here rather
 * than taken from tar-stream because tar-stream decodes pax values as
 * UTF-8 text, which corrupts binary extended attributes such as
 * `security.capability`; here every pax value stays bytes. Headers are
 * checked by their checksum. Memory: one header, one pax record set, and
 * the piece of content being passed on.
 */
import { OciError } from '../errors.js';
import { ByteReader } from './byte-reader.js';
import { BLOCK, paddingFor, type TarEntryType } from './tar-header.js';

/** One entry of an archive being read. */
export interface TarReadEntry {
  /** The name as stored (pax `path` and GNU long names applied), not normalized. */
  name: string;
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

const flagType: Record<string, TarEntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink', '3': 'character-device', '4': 'block-device', '5': 'directory', '6': 'fifo',
};

function cString(b: Buffer, off: number, len: number): Buffer {
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

/** A numeric header field: octal text, or GNU base-256 when the high bit is set. */
function numeric(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const text = cString(b, off, len).toString('latin1').trim();
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

/** Yields the entries of an uncompressed tar stream; `what` names it in errors. */
export async function* readTar(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<TarReadEntry> {
  const reader = new ByteReader(source);
  const short = 'the archive ends in the middle of an entry';
  const take = async (n: number) => Buffer.concat(await reader.take(n, what, short));
  let globalPax = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let unread = 0; // content (with padding) of the previous entry the consumer did not read
  let first = true;
  try {
    for (;;) {
      for await (const _ of reader.pieces(unread, what, short)) { /* skip */ }
      unread = 0;
      if (await reader.atEnd()) return; // some writers omit the end-of-archive blocks
      if (first && !(await reader.fill(BLOCK))) throw new OciError('INVALID_FORMAT', `${what} is not a tar archive (shorter than one header)`);
      const h = await take(BLOCK);
      if (h.every((x) => x === 0)) return;
      if (!checksumOk(h)) {
        throw new OciError('INVALID_FORMAT', first ? `${what} is not a tar archive (its first header's checksum does not match)` : `${what}: damaged tar archive (a header checksum does not match)`);
      }
      first = false;
      const flag = String.fromCharCode(h[156]!);
      let size = numeric(h, 124, 12);
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > 16 << 20) throw new OciError('INVALID_FORMAT', `${what}: an extended header of ${size} bytes is too large`);
        const data = await take(size);
        await reader.take(paddingFor(size), what, short);
        if (flag === 'x') pax = new Map([...pax, ...parsePaxRecords(data, what)]);
        else if (flag === 'g') globalPax = new Map([...globalPax, ...parsePaxRecords(data, what)]);
        else if (flag === 'L') longName = cString(data, 0, data.length).toString('utf8');
        else longLink = cString(data, 0, data.length).toString('utf8');
        continue;
      }
      const records = new Map([...globalPax, ...pax]);
      pax = new Map();
      const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
      const prefix = ustar ? cString(h, 345, 155).toString('utf8') : '';
      let name = cString(h, 0, 100).toString('utf8');
      if (prefix) name = `${prefix}/${name}`;
      name = records.get('path')?.toString('utf8') ?? longName ?? name;
      const linkname = records.get('linkpath')?.toString('utf8') ?? longLink ?? cString(h, 157, 100).toString('utf8');
      longName = longLink = undefined;
      const num = (key: string, fallback: number): number => {
        const v = records.get(key);
        const n = v === undefined ? NaN : Number(v.toString('latin1'));
        return Number.isFinite(n) ? n : fallback;
      };
      size = num('size', size);
      let type: TarEntryType | 'other' = flagType[flag] ?? 'other';
      if (type === 'file' && flag !== '7' && name.endsWith('/')) type = 'directory'; // pre-POSIX archives
      const xattrs = new Map<string, Buffer>();
      for (const [k, v] of records) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice(13), v);
      // Only files carry content; a size on other entries (hard links in some writers) is skipped.
      const contentSize = size;
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
        name, type, typeflag: flag, mode: numeric(h, 100, 8), uid: num('uid', numeric(h, 108, 8)), gid: num('gid', numeric(h, 116, 8)),
        size: contentSize, mtime: num('mtime', numeric(h, 136, 12)), linkname,
        devmajor: numeric(h, 329, 8), devminor: numeric(h, 337, 8), xattrs, body,
      };
    }
  } finally {
    await reader.close();
  }
}
