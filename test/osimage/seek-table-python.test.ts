/**
 * The seek table of a built zstd payload, read by a reader that shares no
 * code with ours: a few lines of Python that follow the zstd seekable format
 * (facebook/zstd contrib/seekable_format) and hand each frame, cut from the
 * blob by the table alone, to the zstd program.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pseudoRandom, runCli, tempDir } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

const MiB = 1 << 20;

// argv: blob, payload. Prints {frames, checksums, compressed, decompressed} or exits non-zero naming what is wrong.
const READER = `
import hashlib, json, struct, subprocess, sys
blob = open(sys.argv[1], 'rb').read()
payload = open(sys.argv[2], 'rb').read()
def fail(why):
    sys.exit(why)
if struct.unpack_from('<I', blob, len(blob) - 4)[0] != 0x8F92EAB1: fail('no seekable magic at the end')
frames, descriptor = struct.unpack_from('<IB', blob, len(blob) - 9)
if descriptor & 0x7C: fail('reserved descriptor bits set')
entry = 12 if descriptor & 0x80 else 8
table = 8 + frames * entry + 9
start = len(blob) - table
magic, frame_size = struct.unpack_from('<II', blob, start)
if magic != 0x184D2A5E: fail('no skippable frame where the footer says the table starts')
if frame_size != table - 8: fail('skippable frame size %d, table %d' % (frame_size, table - 8))
compressed, decompressed, offset, out = [], [], 0, hashlib.sha256()
for i in range(frames):
    c, d = struct.unpack_from('<II', blob, start + 8 + i * entry)
    if struct.unpack_from('<I', blob, offset)[0] != 0xFD2FB528: fail('frame %d does not start with a zstd frame' % i)
    data = subprocess.run(['zstd', '-d', '-c', '-q'], input=blob[offset:offset + c], capture_output=True, check=True).stdout
    if len(data) != d: fail('frame %d: %d bytes, the table says %d' % (i, len(data), d))
    out.update(data)
    compressed.append(c)
    decompressed.append(d)
    offset += c
if offset != start: fail('frames end at %d, the table starts at %d' % (offset, start))
if out.digest() != hashlib.sha256(payload).digest(): fail('the frames do not decode to the payload')
print(json.dumps({'frames': frames, 'checksums': bool(descriptor & 0x80), 'compressed': compressed, 'decompressed': decompressed}))
`;

test("an independent reader finds the zstd payload's frames through its seek table", async (t) => {
  if (!requireTools(t, 'python3', 'zstd')) return;
  const dir = await tempDir(t);
  const size = 9 * MiB + 12345; // a short last frame
  const file = join(dir, 'system.img');
  await writeFile(file, pseudoRandom(size, 5, true));
  const r = await runCli(['build', '-p', `system=${file}`, '--hash-chunk-size', '512KiB', '--frame-size', '2MiB', '-o', `oci:${join(dir, 'out')}`, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const built = JSON.parse(r.stdout) as { payloads: Array<{ size: number; digest: string; blobSize: number }> };
  const payload = built.payloads[0]!;
  assert.equal(payload.size, size);
  const blob = join(dir, 'out', 'blobs', ...payload.digest.split(':'));

  const read = spawnSync('python3', ['-c', READER, blob, file], { encoding: 'utf8' });
  assert.equal(read.status, 0, read.stderr);
  const table = JSON.parse(read.stdout) as { frames: number; checksums: boolean; compressed: number[]; decompressed: number[] };
  assert.equal(table.frames, 5);
  assert.deepEqual(table.decompressed, [2 * MiB, 2 * MiB, 2 * MiB, 2 * MiB, MiB + 12345]);
  assert.equal(table.compressed.length, 5);
  const tableBytes = 8 + 5 * (table.checksums ? 12 : 8) + 9;
  assert.equal(table.compressed.reduce((a, b) => a + b, 0) + tableBytes, payload.blobSize, 'frames and table fill the blob');
});
