/**
 * Tar files given as layers (`--layer x.tar`, `.tar.gz`, `.tar.zst`) are
 * re-normalized entry by entry as directory trees are: numeric owners,
 * clamped mtimes, no other timestamps, no user or group names, excludes
 * applied, xattrs (`SCHILY.xattr.*`) kept. Entries keep their input order:
 * sorting them would mean holding file contents, so only layers built from
 * directories are fully sorted. Names are made relative (`./` and leading
 * `/` dropped); entries with `..` components are refused.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { OciError, fsError } from '../errors.js';
import { decompress } from './decompress.js';
import { isExcluded, normalizeMtime, type NormalizeOptions } from './normalize.js';
import type { TarEntry, TarEntryType } from './tar-header.js';
import type { EntryWithContent } from './tar-writer.js';

const typeMap: Record<string, TarEntryType | undefined> = {
  file: 'file', 'contiguous-file': 'file', link: 'link', symlink: 'symlink',
  'character-device': 'character-device', 'block-device': 'block-device', directory: 'directory', fifo: 'fifo',
};

/** A tar entry name made relative; undefined for the root itself; throws on `..`. */
export function relativeEntryName(raw: string, file: string): string | undefined {
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new OciError('INVALID_FORMAT', `${file}: entry "${raw}" has a ".." component`);
  return parts.length === 0 ? undefined : parts.join('/');
}

/** Streams of the uncompressed tar bytes of a file. */
export async function openTarFile(file: string): Promise<AsyncIterable<Buffer>> {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new OciError('INVALID_ARGUMENT', `${file} is neither a directory nor a tar file`);
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw fsError(err, file, 'read');
  }
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  return decompress(input as AsyncIterable<Buffer>, file);
}

/**
 * Yields the normalized entries of a tar file. `warnings` receives one line
 * per xattr that could not be kept.
 */
export async function* readTarInput(file: string, options: NormalizeOptions = {}, warnings: string[] = []): AsyncGenerator<EntryWithContent> {
  const bytes = await openTarFile(file);
  const extract = tar.extract();
  const src = Readable.from(bytes);
  src.on('error', (err) => extract.destroy(err));
  src.pipe(extract);
  const written = new Set<string>();
  try {
    for await (const stream of extract) {
      const h = stream.header;
      const type = typeMap[h.type ?? ''];
      const rel = relativeEntryName(h.name, file);
      if (!type) {
        stream.resume();
        throw new OciError('UNSUPPORTED', `${file}: entry "${h.name}" has tar type ${h.type ?? 'unknown'}, which layers cannot hold`);
      }
      if (rel === undefined || isExcluded(rel, options.exclude)) {
        stream.resume();
        continue;
      }
      const pax = (h.pax ?? {}) as Record<string, string>;
      const entry: TarEntry = {
        name: type === 'directory' ? `${rel}/` : rel,
        type,
        mode: (h.mode ?? 0o644) & 0o7777,
        uid: options.owner?.uid ?? (pax.uid !== undefined ? Number(pax.uid) : (h.uid ?? 0)),
        gid: options.owner?.gid ?? (pax.gid !== undefined ? Number(pax.gid) : (h.gid ?? 0)),
        size: type === 'file' ? (h.size ?? 0) : 0,
        mtime: normalizeMtime(pax.mtime !== undefined ? Number(pax.mtime) : (h.mtime?.getTime() ?? 0) / 1000, options.sourceDateEpoch),
      };
      if (type === 'symlink') entry.linkname = h.linkname ?? '';
      if (type === 'link') {
        const target = relativeEntryName(h.linkname ?? '', file);
        if (target === undefined || !written.has(target)) {
          // Its target was excluded (or never stored): a dangling hard link cannot be extracted.
          stream.resume();
          continue;
        }
        entry.linkname = target;
      }
      if (type === 'character-device' || type === 'block-device') {
        entry.devmajor = h.devmajor ?? 0;
        entry.devminor = h.devminor ?? 0;
      }
      const xattrs = Object.keys(pax).filter((k) => k.startsWith('SCHILY.xattr.')).sort();
      for (const k of xattrs) {
        const v = pax[k]!;
        if (v.includes('\uFFFD')) {
          warnings.push(`${file}: dropped xattr ${k.slice(13)} of ${rel}: its value is not UTF-8 text`);
          continue;
        }
        (entry.xattrs ??= new Map()).set(k.slice(13), Buffer.from(v, 'utf8'));
      }
      written.add(rel);
      yield { entry, content: type === 'file' ? (stream as unknown as AsyncIterable<Uint8Array>) : undefined };
      stream.resume();
    }
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw new OciError('INVALID_FORMAT', `${file} is not a readable tar archive: ${(err as Error).message}`, { cause: err });
  } finally {
    src.destroy();
  }
}
