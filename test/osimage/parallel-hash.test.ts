import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isOciError } from '../../src/errors.js';
import { hashFileChunks } from '../../src/osimage/parallel-hash.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';

test('chunk hashes on several threads equal hashing the file in one pass', async (t) => {
  const dir = await tempDir(t);
  const chunk = 64 * 1024;
  for (const size of [0, 1, chunk - 1, chunk, chunk + 1, 37 * chunk + 5]) {
    const data = pseudoRandom(size, size + 1);
    const path = join(dir, `f${size}`);
    await writeFile(path, data);
    const expected: string[] = [];
    for (let off = 0; off < size; off += chunk)
      expected.push(
        createHash('sha256')
          .update(data.subarray(off, off + chunk))
          .digest('base64')
          .replace(/=+$/, ''),
      );
    for (const threads of [1, 2, 3, 8]) {
      assert.deepEqual(await hashFileChunks(path, size, chunk, threads), expected, `size ${size}, ${threads} threads`);
    }
  }
  await assert.rejects(hashFileChunks(join(dir, 'missing'), 10, chunk), (e) => isOciError(e, 'INPUT_UNREADABLE'));
});
