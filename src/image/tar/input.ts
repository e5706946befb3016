/**
 * Tar files given as layers (`--layer x.tar`, `.tar.gz`, `.tar.zst`) are
 * re-normalized entry by entry as directory trees are: numeric owners,
 * clamped mtimes, no other timestamps, no user or group names, excludes
 * applied (an excluded directory with everything below it), xattrs
 * (`SCHILY.xattr.*`) kept. Entries keep their input order: sorting them
 * would mean holding file contents, so only layers built from directories
 * are fully sorted; a hard link whose target is not in the layer before it
 * (missing from the tar, or excluded) fails the build. Names are made
 * relative (`./` and leading `/` dropped); entries with `..` components are
 * refused. Extended attributes are kept
 * byte for byte (tar/reader.ts), and so are names and link targets that are
 * not UTF-8: they pass to the layer as their bytes (`rawName`,
 * `rawLinkname`), `..` found in the bytes; excludes see them with U+FFFD,
 * as for trees.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fsError, OciError } from '../../errors.js';
import { decompress } from '../decompress.js';
import { isExcluded, type NormalizeOptions, normalizeMtime } from '../normalize.js';
import type { TarEntry } from './header.js';
import { nameKey, nameParts, readTar, shownName } from './reader.js';
import type { EntryWithContent } from './writer.js';

const SLASH = Buffer.from('/');

/**
 * A tar entry name made relative; undefined for the root itself; throws on
 * `..`. A name given as bytes (not UTF-8) comes back as bytes.
 */
export function relativeEntryName(raw: string, file: string): string | undefined;
export function relativeEntryName(raw: string | Buffer, file: string): string | Buffer | undefined;
export function relativeEntryName(raw: string | Buffer, file: string): string | Buffer | undefined {
  const parts = nameParts(raw);
  if (parts.includes('..')) throw new OciError('INVALID_ARGUMENT', `${file}: entry "${shownName(raw)}" has a ".." component`);
  if (parts.length === 0) return undefined;
  if (typeof raw === 'string') return parts.join('/');
  return Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [SLASH, Buffer.from(p)])));
}

/**
 * Whether a relative entry name is excluded, as a tree walk decides it: the
 * walk tests each path without its trailing `/` and never enters an excluded
 * directory, so here a name is excluded when it or any of its parent
 * directories matches. Parents are tested by name, not by the directory
 * entries seen, as a tar need not hold an entry for every directory. Entries
 * of one directory usually follow each other, so the last parent's answer is
 * kept.
 */
function excludedWithParents(exclude: RegExp[] | undefined): (rel: string) => boolean {
  if (!exclude || exclude.length === 0) return () => false;
  let lastParent: string | undefined;
  let lastAnswer = false;
  const parentExcluded = (parent: string): boolean => {
    if (parent !== lastParent) {
      lastAnswer = false;
      for (let i = parent.indexOf('/'); i >= 0 && !lastAnswer; i = parent.indexOf('/', i + 1)) lastAnswer = isExcluded(parent.slice(0, i), exclude);
      lastAnswer ||= isExcluded(parent, exclude);
      lastParent = parent;
    }
    return lastAnswer;
  };
  return (rel) => {
    const slash = rel.lastIndexOf('/');
    return (slash > 0 && parentExcluded(rel.slice(0, slash))) || isExcluded(rel, exclude);
  };
}

/** The error for a hard link whose target is not in the layer: excluded, or not before it in the tar. */
function danglingLink(file: string, rel: string, target: string | Buffer | undefined, excluded: (rel: string) => boolean): OciError {
  const shown = target === undefined ? '.' : shownName(target);
  if (target !== undefined && excluded(shown)) {
    return new OciError(
      'INVALID_ARGUMENT',
      `${file}: hard link "${rel}" to "${shown}": --exclude drops its target, whose content cannot be kept under the other name from a tar; exclude both names or neither`,
    );
  }
  return new OciError('INVALID_ARGUMENT', `${file}: hard link "${rel}" to "${shown}": its target is not in the tar before it`);
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

/** A tar input that is damaged is invalid input (INVALID_ARGUMENT, exit 2). */
function asBadInput(err: unknown): unknown {
  return err instanceof OciError && err.code === 'INVALID_FORMAT' ? new OciError('INVALID_ARGUMENT', err.message, { cause: err }) : err;
}

/**
 * The entries of a tar file given as input. A file that is not a tar, or
 * not a readable one, is invalid input (INVALID_ARGUMENT, exit 2), as a
 * path that is neither a directory nor a file is: nothing failed a check
 * of content against its digest. That holds for an entry's content too,
 * read by the caller (an archive cut short inside an entry).
 */
async function* inputEntries(file: string): ReturnType<typeof readTar> {
  try {
    for await (const e of readTar(await openTarFile(file), file)) {
      const body = e.body;
      yield {
        ...e,
        body: {
          async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
            try {
              yield* body;
            } catch (err) {
              throw asBadInput(err);
            }
          },
        },
      };
    }
  } catch (err) {
    throw asBadInput(err);
  }
}

/**
 * Yields the normalized entries of a tar file. `warnings` is kept for
 * callers that collect them (nothing is dropped silently: xattrs are kept
 * byte for byte).
 */
export async function* readTarInput(file: string, options: NormalizeOptions = {}, _warnings: string[] = []): AsyncGenerator<EntryWithContent> {
  const written = new Set<string>(); // by nameKey: names that are not UTF-8 must match byte for byte
  const excluded = excludedWithParents(options.exclude);
  for await (const e of inputEntries(file)) {
    if (e.type === 'other') {
      throw new OciError('UNSUPPORTED', `${file}: entry "${e.name}" has tar type '${e.typeflag}', which layers cannot hold`);
    }
    const relName = relativeEntryName(e.rawName ?? e.name, file);
    if (relName === undefined) continue;
    const rel = shownName(relName);
    if (excluded(rel)) continue;
    const type = e.type;
    const entry: TarEntry = {
      name: type === 'directory' ? `${rel}/` : rel,
      type,
      mode: e.mode & 0o7777,
      uid: options.owner?.uid ?? e.uid,
      gid: options.owner?.gid ?? e.gid,
      size: type === 'file' ? e.size : 0,
      mtime: normalizeMtime(e.mtime, options.sourceDateEpoch),
    };
    if (typeof relName !== 'string') entry.rawName = type === 'directory' ? Buffer.concat([relName, SLASH]) : relName;
    if (type === 'symlink') {
      entry.linkname = e.linkname;
      if (e.rawLinkname) entry.rawLinkname = e.rawLinkname;
    }
    if (type === 'link') {
      const target = relativeEntryName(e.rawLinkname ?? e.linkname, file);
      // A hard link holds no bytes of its own: without its target in the layer, dropping it would lose
      // the file and keeping it would not extract. The target's bytes, when it was excluded, were
      // streamed past and are gone, so the build stops rather than losing content silently.
      if (target === undefined || !written.has(nameKey(target))) throw danglingLink(file, rel, target, excluded);
      entry.linkname = shownName(target);
      if (typeof target !== 'string') entry.rawLinkname = target;
    }
    if (type === 'character-device' || type === 'block-device') {
      entry.devmajor = e.devmajor;
      entry.devminor = e.devminor;
    }
    if (e.xattrs.size > 0) entry.xattrs = new Map([...e.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    written.add(nameKey(relName));
    yield { entry, content: type === 'file' ? e.body : undefined };
  }
}
