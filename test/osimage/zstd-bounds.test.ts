/**
 * Decoding zstd payloads in bounded memory, and the streaming path held to
 * the same checks as the in-memory one: seek table, trailing bytes,
 * truncation and the decoder's own verdict.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { encodeSeekTable } from '../../src/codec/seek-table.js';
import { zstdCompress } from '../../src/codec/zstd.js';
import { decodeZstdStream } from '../../src/codec/zstd-stream.js';
import type { OciError } from '../../src/errors.js';
import { pseudoRandom } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function* pieces(b: Buffer, size = 16 * KiB): AsyncGenerator<Buffer> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

/** Decoded pieces' sizes and the bytes (kept only when `keep`). */
async function decode(blob: Buffer, options: Parameters<typeof decodeZstdStream>[1] = {}, keep = true): Promise<{ sizes: number[]; data: Buffer }> {
  const sizes: number[] = [];
  const parts: Buffer[] = [];
  for await (const out of decodeZstdStream(pieces(blob), options)) {
    sizes.push(out.length);
    if (keep) parts.push(out);
  }
  return { sizes, data: Buffer.concat(parts) };
}

/** A frame as the `zstd` program writes it when compressing a pipe: no content size in its header. */
function zstdPipe(shell: string): Buffer {
  const r = spawnSync('sh', ['-c', `${shell} | zstd -q -c -1`], { maxBuffer: 64 * MiB });
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
}

describe('zstd decoding in bounded memory', () => {
  it('streams a frame that declares no size and whose blocks decode to more than can be held', async (t) => {
    if (!requireTools(t, 'zstd')) return;
    // 300 MiB of zeros in a few KB: decoded whole, this would be one 300 MiB buffer.
    const blob = zstdPipe('head -c 314572800 /dev/zero');
    assert.ok(blob.length < 64 * KiB, `${blob.length} bytes compressed`);
    assert.equal(blob[4]! >> 6, 0, 'the frame header declares no content size');
    const { sizes } = await decode(blob, {}, false);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      300 * MiB,
    );
    assert.ok(Math.max(...sizes) <= 1 * MiB, `largest decoded piece ${Math.max(...sizes)} bytes`);
  });

  it('still decodes small frames without a declared size in memory, one piece per frame', async (t) => {
    if (!requireTools(t, 'zstd')) return;
    const blob = zstdPipe('head -c 700000 /dev/zero');
    const { sizes, data } = await decode(blob);
    assert.deepEqual(sizes, [700000]);
    assert.ok(data.equals(Buffer.alloc(700000)));
  });
});

describe('zstd streaming path', () => {
  // Frames larger than maxFrameBytes go to the streaming decoder.
  const streamed = { maxFrameBytes: 32 * KiB };
  const a = pseudoRandom(200 * KiB, 1, true);
  const b = pseudoRandom(150 * KiB, 2, true);

  it('accepts a blob whose seek table matches the streamed frames', async () => {
    const fa = await zstdCompress(a, 3);
    const fb = await zstdCompress(b, 3);
    assert.ok(fa.length > 32 * KiB && fb.length > 32 * KiB);
    const blob = Buffer.concat([
      fa,
      fb,
      encodeSeekTable([
        { compressedSize: fa.length, decompressedSize: a.length },
        { compressedSize: fb.length, decompressedSize: b.length },
      ]),
    ]);
    const { data, sizes } = await decode(blob, streamed);
    assert.ok(data.equals(Buffer.concat([a, b])));
    assert.ok(sizes.length > 2, 'decoded by the streaming decoder, not frame by frame');
  });

  it('refuses a seek table that does not match the streamed frames', async () => {
    const fa = await zstdCompress(a, 3);
    const fb = await zstdCompress(b, 3);
    const table = (frames: Array<[number, number]>) => encodeSeekTable(frames.map(([c, d]) => ({ compressedSize: c, decompressedSize: d })));
    const bad: Array<[Buffer, RegExp]> = [
      [
        Buffer.concat([fa, table([[fa.length, a.length + 1]])]),
        new RegExp(`^seek table entry 0 lists ${a.length + 1} decompressed bytes, the frames from compressed offset 0 decode to ${a.length}$`),
      ],
      [
        Buffer.concat([
          fa,
          fb,
          table([
            [fa.length, a.length],
            [fb.length + 1, b.length],
          ]),
        ]),
        new RegExp(`^seek table entry 1 \\(${fb.length + 1} -> ${b.length} bytes\\) does not match frame 1 at compressed offset ${fa.length}`),
      ],
      [Buffer.concat([fa, fb, table([[fa.length, a.length]])]), /^seek table lists 1 frames, the blob holds 2$/],
      [
        Buffer.concat([
          fa,
          fb,
          table([
            [fa.length, a.length],
            [fb.length, b.length - 1],
          ]),
        ]),
        new RegExp(
          `^seek table entries 0 to 1 list ${a.length + b.length - 1} decompressed bytes, the frames from compressed offset 0 decode to ${a.length + b.length}$`,
        ),
      ],
    ];
    for (const [blob, message] of bad) {
      await assert.rejects(decode(blob, streamed), (e: OciError) => {
        assert.equal(e.code, 'INVALID_FORMAT', e.message);
        assert.match(e.message, message);
        return true;
      });
    }
  });

  it('refuses bytes after the last frame and a truncated frame', async () => {
    const fa = await zstdCompress(a, 3);
    await assert.rejects(
      decode(Buffer.concat([fa, Buffer.from('trailing garbage')]), streamed),
      (e: OciError) => e.code === 'INVALID_FORMAT' && e.message === `no zstd frame at compressed offset ${fa.length}`,
    );
    await assert.rejects(
      decode(fa.subarray(0, fa.length - 100), streamed),
      (e: OciError) => e.code === 'INVALID_FORMAT' && /^zstd stream is truncated: \d+ bytes of an incomplete frame at compressed offset 0$/.test(e.message),
    );
  });

  it('fails when the decoder finds the data corrupt after all its output was read', async (t) => {
    if (!requireTools(t, 'zstd')) return;
    // A wrong frame checksum is found only at the very end, after the last decoded byte.
    const z = spawnSync('zstd', ['-q', '-c', '--check', '-3'], { input: a });
    assert.equal(z.status, 0);
    const frame = Buffer.from(z.stdout);
    frame[frame.length - 1]! ^= 0xff;
    await assert.rejects(decode(frame, streamed), (e: OciError) => {
      assert.equal(e.code, 'INVALID_FORMAT', e.message);
      assert.match(e.message, /^zstd stream from compressed offset 0 is corrupt: /);
      return true;
    });
  });
});
