/**
 * Unpacking a container image into a directory (image-spec layer.md
 * "Applying changesets"): layers in order, each streamed and decompressed
 * once; whiteouts `.wh.NAME` delete NAME from lower layers and an opaque
 * whiteout `.wh..wh..opq` clears what lower layers put in its directory.
 * Every path is resolved inside the directory (secure-path.ts); an entry
 * that would leave it stops the unpack with INVALID_FORMAT naming it.
 * Restores files, directories, symlinks, hard links, FIFOs and (as root)
 * device nodes; modes including setuid, setgid and sticky; mtimes; owners
 * when running as root. Directory modes and times are applied last,
 * deepest first, so later entries can still be written into them.
 * Extended attributes (pax `SCHILY.xattr.*`, byte for byte) are restored
 * with setfattr when it is installed (Node.js has no xattr API).
 * Names and link targets that are not UTF-8 are created byte for byte
 * (Node's fs functions take paths as bytes); every check above is made on
 * those bytes.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, readdir, realpath, rename, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LocationOptions } from '../copy/locations.js';
import { fsError, InterruptedError, isOciError, OciError } from '../errors.js';
import type { Platform } from '../oci/descriptor.js';
import { Sha256Counter } from '../oci/digest.js';
import { decompress } from './decompress.js';
import { entryComponents, type HostPath, joinHost, resolveDirectory } from './secure-path.js';
import { openImage } from './source.js';
import { nameKey, namePart, readTar, shownName } from './tar/reader.js';
import { canWriteXattrs } from './xattrs.js';

/** Unpacking state carried across layers. */
export interface UnpackState {
  /** Realpath of the directory unpacked into. */
  root: string;
  /** Directory (by {@link nameKey}: its bytes, as names need not be UTF-8) → [mode, mtime], applied at the end. */
  dirs: Map<string, [number, number]>;
  /** Whether owners are restored (running as root). */
  chown: boolean;
  /** Entries written. */
  entries: number;
  /** Device nodes skipped because the process is not root. */
  skippedDevices: number;
  /** Extended attributes not restored because setfattr is missing. */
  skippedXattrs: number;
  /**
   * What a failed unpack removes so that nothing of it is left: the first
   * directory it created (DIR or an ancestor), or DIR's contents when DIR
   * was empty; undefined when DIR already held files.
   */
  undo?: { created: string } | { emptied: string };
}

/** Starts an unpack into `dir` (created when missing). */
export async function startUnpack(dir: string): Promise<UnpackState> {
  try {
    const st = await lstat(dir).catch(() => undefined);
    if (st && !st.isDirectory() && !st.isSymbolicLink()) throw new OciError('INVALID_ARGUMENT', `${dir} is not a directory`);
    const created = await mkdir(dir, { recursive: true });
    const root = await realpath(dir);
    if (!(await lstat(root)).isDirectory()) throw new OciError('INVALID_ARGUMENT', `${dir} is not a directory`);
    const undo = created !== undefined ? { created } : (await readdir(root)).length === 0 ? { emptied: root } : undefined;
    return { root, dirs: new Map(), chown: process.getuid?.() === 0, entries: 0, skippedDevices: 0, skippedXattrs: 0, undo };
  } catch (err) {
    if (isOciError(err)) throw err;
    throw fsError(err, dir, 'write');
  }
}

/** Removes whatever is at `path` (never following a symlink), forgetting deferred directory metadata below it. */
async function removeExisting(state: UnpackState, path: HostPath): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isDirectory()) {
    await unlink(path);
    return;
  }
  await rm(path, { recursive: true, force: true });
  const key = nameKey(path);
  const prefix = key + sep;
  for (const dir of state.dirs.keys()) if (dir === key || dir.startsWith(prefix)) state.dirs.delete(dir);
}

/**
 * Removes everything in `dir` that the current layer did not create
 * (recursing into directories it did). `created` holds {@link nameKey}s;
 * names are listed as bytes, so lower-layer names that are not UTF-8 are
 * found too.
 */
async function clearLower(state: UnpackState, dir: HostPath, created: Set<string>): Promise<void> {
  for (const name of await readdir(dir, { encoding: 'buffer' })) {
    const p = joinHost(dir, namePart(name));
    if (!created.has(nameKey(p))) await removeExisting(state, p);
    else if ((await lstat(p)).isDirectory()) await clearLower(state, p, created);
  }
}

function runTool(cmd: string, args: string[], target: string, input?: Buffer): void {
  const r = spawnSync(cmd, args, { stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'], input });
  if (r.status !== 0) throw new OciError('OUTPUT_UNWRITABLE', `cannot create ${target}: ${r.error?.message ?? r.stderr.toString().trim()}`);
}

/**
 * Makes a FIFO or device node with mkfifo or mknod (`args` follow the
 * path). A path that is not UTF-8 cannot be passed as an argument: the node
 * is then made under a temporary name in the root and renamed into place.
 */
async function makeNode(state: UnpackState, cmd: string, target: HostPath, args: string[]): Promise<void> {
  if (typeof target === 'string') return runTool(cmd, [target, ...args], target);
  const temp = join(state.root, `.oci-os-unpack-${randomBytes(8).toString('hex')}`);
  runTool(cmd, [temp, ...args], shownName(target));
  await rename(temp, target);
}

/** Bytes as setfattr --restore reads a name: `\ooo` for every byte but printable ASCII other than `\` and `=`. */
function restoreQuoted(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b > 0x20 && b < 0x7f && b !== 0x5c && b !== 0x3d ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`;
  return out;
}

/**
 * Sets extended attributes on `target` (never following a symlink): with
 * one setfattr per attribute, or for a path that is not UTF-8 (which cannot
 * be an argument) with one `setfattr --restore` reading the path escaped
 * from stdin.
 */
function setXattrs(target: HostPath, xattrs: Map<string, Buffer>): void {
  if (typeof target === 'string') {
    for (const [k, v] of xattrs) runTool('setfattr', ['-h', '-n', k, '-v', `0s${v.toString('base64')}`, '--', target], target);
    return;
  }
  const lines = [`# file: ${restoreQuoted(target)}`];
  for (const [k, v] of xattrs) lines.push(`${restoreQuoted(Buffer.from(k))}=0s${v.toString('base64')}`);
  runTool('setfattr', ['-h', '--restore=-'], shownName(target), Buffer.from(`${lines.join('\n')}\n\n`));
}

const WHITEOUT = Buffer.from('.wh.');
const OPAQUE = Buffer.from('.wh..wh..opq');

/** Applies one layer (uncompressed tar bytes) onto the directory. `what` names the layer in errors. */
export async function applyLayer(state: UnpackState, tarBytes: AsyncIterable<Buffer>, what: string): Promise<void> {
  const created = new Set<string>();
  let current = '';
  try {
    for await (const e of readTar(tarBytes, what)) {
      current = e.name;
      const comps = entryComponents(e.rawName ?? e.name, e.name);
      if (comps.length === 0) continue;
      const base = comps[comps.length - 1]!;
      const { host: parent, path: dirs } = await resolveDirectory(state.root, comps.slice(0, -1), e.name);
      // The directories an entry goes into are part of this layer even when it has no entries of its
      // own for them (or they were already there): an opaque whiteout later in the layer, such as
      // `dir/.wh..wh..opq` after `dir/-sub/new` in byte order, keeps them and clears only what lower layers put in them.
      for (let i = 1; i <= dirs.length; i++) created.add(nameKey(joinHost(state.root, ...dirs.slice(0, i))));
      // Whiteouts are recognised by the bytes of the name, whatever follows `.wh.`.
      const baseBytes = Buffer.from(base);
      if (baseBytes.subarray(0, WHITEOUT.length).equals(WHITEOUT)) {
        const hidden = namePart(baseBytes.subarray(WHITEOUT.length));
        if (baseBytes.equals(OPAQUE)) await clearLower(state, parent, created);
        else if (hidden === '' || hidden === '.' || hidden === '..') {
          throw new OciError(
            'INVALID_FORMAT',
            `layer entry "${e.name}" is a whiteout of "${hidden}", which would delete a directory above it; refusing to unpack it`,
          );
        } else await removeExisting(state, joinHost(parent, hidden));
        continue;
      }
      const target = joinHost(parent, base);
      const mode = e.mode & 0o7777;
      switch (e.type) {
        case 'directory': {
          const st = await lstat(target).catch(() => undefined);
          if (st && !st.isDirectory()) await removeExisting(state, target);
          if (!st?.isDirectory()) await mkdir(target, { mode: 0o755 });
          break;
        }
        case 'file':
          await removeExisting(state, target);
          await pipeline(Readable.from(e.body), createWriteStream(target, { flags: 'wx', mode: 0o600 }));
          break;
        case 'symlink':
          await removeExisting(state, target);
          await symlink(e.rawLinkname ?? e.linkname, target);
          break;
        case 'link': {
          const lc = entryComponents(e.rawLinkname ?? e.linkname, `${e.name} (hard link to ${e.linkname})`);
          if (lc.length === 0) throw new OciError('INVALID_FORMAT', `layer entry "${e.name}" is a hard link to the root; refusing to unpack it`);
          const { host } = await resolveDirectory(state.root, lc.slice(0, -1), e.name);
          const from = joinHost(host, lc[lc.length - 1]!);
          const st = await lstat(from).catch(() => undefined);
          if (!st || st.isDirectory())
            throw new OciError('INVALID_FORMAT', `layer entry "${e.name}" is a hard link to ${e.linkname}, which is ${st ? 'a directory' : 'missing'}`);
          if (nameKey(from) !== nameKey(target)) {
            await removeExisting(state, target);
            await link(from, target);
          }
          created.add(nameKey(target));
          state.entries++;
          continue; // a hard link shares its target's inode, owner, mode, times and xattrs
        }
        case 'character-device':
        case 'block-device':
          if (!state.chown) {
            state.skippedDevices++;
            continue;
          }
          await removeExisting(state, target);
          await makeNode(state, 'mknod', target, [e.type === 'block-device' ? 'b' : 'c', String(e.devmajor), String(e.devminor)]);
          break;
        case 'fifo':
          await removeExisting(state, target);
          await makeNode(state, 'mkfifo', target, []);
          break;
        default:
          throw new OciError('UNSUPPORTED', `${what}: entry "${e.name}" has tar type '${e.typeflag}', which cannot be unpacked`);
      }
      created.add(nameKey(target));
      state.entries++;
      // Owner first (changing it clears file capabilities), then xattrs, then mode and times.
      if (state.chown) await lchown(target, e.uid, e.gid);
      if (e.xattrs.size > 0) {
        if (canWriteXattrs()) setXattrs(target, e.xattrs);
        else state.skippedXattrs += e.xattrs.size;
      }
      if (e.type === 'directory') state.dirs.set(nameKey(target), [mode, e.mtime]);
      else if (e.type === 'symlink') await lutimes(target, e.mtime, e.mtime);
      else {
        await chmod(target, mode);
        await utimes(target, e.mtime, e.mtime);
      }
    }
  } catch (err) {
    if (isOciError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw fsError(err, current ? `${state.root}${sep}${current}` : state.root, 'write');
    throw new OciError('INVALID_FORMAT', `${what} is not a readable tar layer: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * After a failure: removes what the unpack wrote when DIR was new or empty
 * (true), so no unchecked content is left; false when DIR held files before
 * and now also holds part of the image.
 */
export async function undoUnpack(state: UnpackState): Promise<boolean> {
  const undo = state.undo;
  if (!undo) return false;
  if ('created' in undo) {
    await rm(undo.created, { recursive: true, force: true });
  } else {
    for (const name of await readdir(undo.emptied, { encoding: 'buffer' })) await removeExisting(state, joinHost(undo.emptied, namePart(name)));
  }
  return true;
}

/** Applies the deferred directory modes and times, deepest first. */
export async function finishUnpack(state: UnpackState): Promise<void> {
  const dirs = [...state.dirs].sort(([a], [b]) => b.split(sep).length - a.split(sep).length);
  for (const [key, [mode, mtime]] of dirs) {
    const path = Buffer.from(key, 'latin1');
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue; // replaced or deleted by a later layer
    // A later layer may have turned a parent into a symlink: never chmod through one.
    if ((await realpath(path, { encoding: 'buffer' }).catch(() => undefined))?.equals(path) !== true) continue;
    try {
      await chmod(path, mode);
      await utimes(path, mtime, mtime);
    } catch (err) {
      throw fsError(err, shownName(path), 'write');
    }
  }
}

/** What {@link unpackImage} did. */
export interface UnpackReport {
  digest: string;
  platform: Platform;
  layers: number;
  entries: number;
  skippedDevices: number;
  skippedXattrs: number;
  directory: string;
}

/** Passes bytes through, hashing them (readTar reads the layer to its end, past the end-of-archive marker, so the hash covers all of it). */
async function* counted(source: AsyncIterable<Buffer>, counter: Sha256Counter): AsyncGenerator<Buffer> {
  for await (const c of source) {
    counter.update(c);
    yield c;
  }
}

/** Unpacks the image at `src` (any location) into `dir`. */
export async function unpackImage(
  src: string,
  dir: string,
  options: LocationOptions & { platform?: Platform; signal?: AbortSignal } = {},
): Promise<UnpackReport> {
  const image = await openImage(src, options);
  let state: UnpackState | undefined;
  try {
    state = await startUnpack(dir);
    for (const [i, layer] of image.manifest.layers.entries()) {
      options.signal?.throwIfAborted();
      const what = `${src}: layer ${i + 1} (${layer.digest})`;
      const stream = await image.store.fetch(layer, { signal: options.signal });
      const counter = new Sha256Counter();
      await applyLayer(state, counted(decompress(stream as AsyncIterable<Buffer>, what), counter), what);
      const diffID = image.config.rootfs.diff_ids[i];
      const actual = counter.digest();
      if (actual !== diffID) {
        throw new OciError('DIGEST_MISMATCH', `${what}: the uncompressed layer has digest ${actual}, but the config's DiffID is ${diffID}`);
      }
    }
    await finishUnpack(state);
    const { os, architecture, variant } = image.config;
    return {
      digest: image.descriptor.digest,
      platform: variant ? { os, architecture, variant } : { os, architecture },
      layers: image.manifest.layers.length,
      entries: state.entries,
      skippedDevices: state.skippedDevices,
      skippedXattrs: state.skippedXattrs,
      directory: state.root,
    };
  } catch (err) {
    // A layer is checked against its DiffID only once it is unpacked: what was written before a
    // failure is unchecked, so it goes, unless DIR held files before (then the error says so).
    const undone = state ? await undoUnpack(state).catch(() => false) : true;
    const left = undone ? `nothing was left in ${dir}` : `${dir} holds part of the image`;
    if (options.signal?.aborted) throw new InterruptedError(`unpack aborted; ${left}`, { cause: err });
    if (undone || !isOciError(err)) throw err;
    throw new OciError(err.code, err.message, {
      cause: err,
      hint: err.hint ?? `${left}, unchecked; unpack into a new directory to keep failures from mixing with it`,
    });
  } finally {
    await image.location.close();
  }
}
