import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteQueue } from '../../src/util/byte-queue.js';

test('append joins a piece that continues the last one in the same memory', () => {
  const slab = Buffer.from('abcdefgh');
  const q = new ByteQueue();
  q.append(slab.subarray(0, 3));
  q.append(slab.subarray(3, 5));
  q.append(Buffer.from('xyz'));
  assert.equal(q.length, 8);
  const pieces = q.pieces(8);
  assert.deepEqual(
    pieces.map((p) => p.toString()),
    ['abcde', 'xyz'],
  );
  assert.equal(pieces[0]!.buffer, slab.buffer, 'the joined piece is a view, not a copy');
});

test('append keeps pieces apart when they are not contiguous', () => {
  const slab = Buffer.from('abcdefgh');
  const q = new ByteQueue();
  q.append(slab.subarray(0, 2));
  q.append(slab.subarray(3, 5));
  assert.deepEqual(
    q.pieces(10).map((p) => p.toString()),
    ['ab', 'de'],
  );
});

test('pieces leaves the bytes queued and cuts the last piece', () => {
  const q = new ByteQueue();
  q.push(Buffer.from('abc'));
  q.push(Buffer.from('def'));
  assert.deepEqual(
    q.pieces(4).map((p) => p.toString()),
    ['abc', 'd'],
  );
  assert.equal(q.length, 6);
  assert.deepEqual(
    q.shift(4).map((p) => p.toString()),
    ['abc', 'd'],
  );
  assert.deepEqual(
    q.pieces(10).map((p) => p.toString()),
    ['ef'],
  );
  assert.equal(q.take(2).toString(), 'ef');
  assert.deepEqual(q.pieces(3), []);
});
