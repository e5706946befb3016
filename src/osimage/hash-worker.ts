/**
 * Worker side of hashFileChunks: hashes the chunks of one byte range of a
 * file and posts the base64 chunk hashes back.
 */

import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

interface Job {
  path: string;
  start: number;
  end: number;
  chunkSize: number;
}

const { path, start, end, chunkSize } = workerData as Job;
const piece = Math.max(chunkSize, Math.floor((4 << 20) / chunkSize) * chunkSize);
const buf = Buffer.allocUnsafeSlow(piece);
const hashes: string[] = [];
// Synchronous reads: this thread does nothing else, and a read from the page cache costs less than
// a round trip through the thread pool that the other hashing thread shares.
const fd = openSync(path, 'r');
try {
  for (let pos = start; pos < end; ) {
    const want = Math.min(piece, end - pos);
    let filled = 0;
    while (filled < want) {
      const bytesRead = readSync(fd, buf, filled, want - filled, pos + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    for (let off = 0; off < filled; off += chunkSize) {
      hashes.push(
        createHash('sha256')
          .update(buf.subarray(off, Math.min(off + chunkSize, filled)))
          .digest('base64')
          .replace(/=+$/, ''),
      );
    }
    pos += filled;
    if (filled < want) break;
  }
} finally {
  closeSync(fd);
}
parentPort!.postMessage(hashes);
