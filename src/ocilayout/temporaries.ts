/**
 * A layout's temporary directory (`.oci-os-tmp`): blobs and small files on
 * their way in, and the registrations of the writers that have the layout
 * open. Everything in it is named with its writer's owner tag (owner.ts). A
 * writer killed outright cannot remove its own; every writer, on opening
 * and on committing (under the lock), removes those whose owner is gone.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fsError } from '../errors.js';
import { makeDirs } from '../util/fs.js';
import { ownerAlive, ownerTag } from './owner.js';

/** The temporary directory's name inside the layout (left out of packed archives). */
export const TMP_DIR = '.oci-os-tmp';
/** Names in the temporary directory that carry their writer's owner tag (owner.ts): `<what>-<pid>[.<start>]-<16 hex>`. */
const OWNED_NAME = /-(\d+(?:\.\d+)?)-[0-9a-f]{16}$/;
/** What a writer's registration is named after. */
const WRITER = 'writer';

/** A temporary file name that says which process wrote it, so that one left by a process that is gone can be removed. */
export function ownedName(what: string): string {
  return `${what}-${ownerTag()}-${randomBytes(8).toString('hex')}`;
}

/**
 * Removes the temporary files (blobs being written, registrations, small
 * files on their way in) of writers that are gone: killed, they could not
 * remove their own. Returns the names left, those of writers that may
 * still run. Call with the layout's lock held.
 */
export async function removeDeadTemporaries(tmpDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(tmpDir);
  } catch {
    return [];
  }
  const left: string[] = [];
  for (const name of names) {
    const owner = OWNED_NAME.exec(name)?.[1];
    if (owner !== undefined && !ownerAlive(owner)) await rm(join(tmpDir, name), { force: true, recursive: true }).catch(() => {});
    else left.push(name);
  }
  return left;
}

/**
 * One writer's registration among the writers of a layout: an empty file
 * in the temporary directory while the writer is open. A writer that finds
 * another registered leaves the blobs it added when it aborts (the other
 * may have found one present and skipped writing it).
 */
export class WriterRegistration {
  private file?: string;

  /** `shownAs`: how a failure to register names the place (the layout, or what the user named). */
  constructor(
    private readonly tmpDir: string,
    private readonly shownAs: string,
  ) {}

  get registered(): boolean {
    return this.file !== undefined;
  }

  /** Call with the lock held. */
  async register(): Promise<void> {
    const file = join(this.tmpDir, ownedName(WRITER));
    try {
      await makeDirs(this.tmpDir);
      await writeFile(file, '', { flag: 'wx' });
    } catch (err) {
      throw fsError(err, this.shownAs, 'write');
    }
    this.file = file;
  }

  async unregister(): Promise<void> {
    if (!this.file) return;
    await unlink(this.file).catch(() => {});
    this.file = undefined;
  }

  /** Stops counting as registered without touching the file (its directory is gone). */
  forget(): void {
    this.file = undefined;
  }

  /**
   * Whether another writer is registered. Call with the lock held.
   * Registrations and temporary files of processes that are gone are
   * removed on the way.
   */
  async othersRegistered(): Promise<boolean> {
    const left = await removeDeadTemporaries(this.tmpDir);
    return left.some((name) => name.startsWith(`${WRITER}-`) && join(this.tmpDir, name) !== this.file);
  }
}
