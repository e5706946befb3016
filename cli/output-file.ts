/** Checking, before any work, that a file a command writes at its end can be written; writing it. */
import { constants } from 'node:fs';
import { access, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsError } from '../src/errors.js';

/**
 * Throws OUTPUT_UNWRITABLE (naming `path`) unless `path` can be written:
 * an existing file must be writable and not a directory, a new one needs an
 * existing, writable directory. Meant for files written after the work is
 * done (`--digest-file` of push, build and image build): found only then, a
 * bad path would fail a push that has already published and tagged the image.
 */
export async function checkWritableFile(path: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, path, 'write');
  }
  try {
    if (st) {
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      await access(path, constants.W_OK);
      return;
    }
    const dir = await stat(dirname(path));
    if (!dir.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    await access(dirname(path), constants.W_OK | constants.X_OK);
  } catch (err) {
    throw fsError(err, path, 'write');
  }
}

/** Writes `text` to `path` (checked before with {@link checkWritableFile}); failures name `path`. */
export async function writeOutputFile(path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text);
  } catch (err) {
    throw fsError(err, path, 'write');
  }
}
