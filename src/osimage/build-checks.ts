/**
 * Everything a build can check before it stores anything (payload names and
 * files, product info, encoding, and the size of the config they give), so
 * a bad input fails at once with nothing written.
 */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fsError, OciError } from '../errors.js';
import { formatSize } from '../util/size.js';
import type { OsImageBuildOptions, PayloadInput } from './build-options.js';
import {
  chunkCount,
  MAX_HASH_CHUNK_SIZE,
  MAX_METADATA_SIZE,
  normalizeProductInfo,
  type ProductInfo,
  predictConfigSize,
  validatePayloadName,
} from './format.js';
import { type PayloadEncoding, resolveEncoding } from './payload.js';

function fileKind(st: Stats): string {
  if (st.isFIFO()) return 'a pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

/** Checks payload names and files before any work starts; returns each file's size. */
export async function checkPayloadInputs(payloads: PayloadInput[]): Promise<Stats[]> {
  if (payloads.length === 0) {
    throw new OciError('USAGE', 'no payloads given: add at least one --payload NAME=PATH');
  }
  const seen = new Set<string>();
  const stats: Stats[] = [];
  for (const p of payloads) {
    validatePayloadName(p.name);
    if (seen.has(p.name)) throw new OciError('INVALID_PAYLOAD_NAME', `payload name "${p.name}" is given twice; payload names must be unique`);
    seen.add(p.name);
    let st;
    try {
      st = await stat(p.path);
    } catch (err) {
      throw fsError(err, p.path, 'read');
    }
    if (st.isDirectory()) {
      throw new OciError('INPUT_UNREADABLE', `payload "${p.name}": ${p.path} is a directory; a payload is a file (an image of a filesystem, a kernel)`);
    }
    // A payload's size goes into the config before it is read, and it may be read twice (a cached
    // blob is confirmed by hashing): a pipe cannot be read again and /dev/zero never ends.
    if (!st.isFile()) {
      throw new OciError(
        'USAGE',
        `payload "${p.name}": ${p.path} is not a regular file but ${fileKind(st)}; payloads are read from regular files (copy it to one first)`,
      );
    }
    stats.push(st);
  }
  return stats;
}

/** A size as a --hash-chunk-size value (`4KiB`, `1MiB`). */
function sizeFlagValue(n: number): string {
  if (n % (1 << 20) === 0) return `${n / (1 << 20)}MiB`;
  if (n % 1024 === 0) return `${n / 1024}KiB`;
  return String(n);
}

/**
 * Refuses a build whose config would be larger than readers accept
 * (MAX_METADATA_SIZE; our reader and the format's reference reader both
 * stop there): with a tiny hash chunk size a large payload has millions of
 * chunk hashes, and the image would be built and pushed only to be rejected
 * by every reader. Known from the file sizes alone, so nothing is read or
 * stored first.
 */
function checkConfigSize(payloads: PayloadInput[], stats: Stats[], productInfo: ProductInfo, hashChunkSize: number): void {
  const sized = payloads.map((p, i) => ({ name: p.name, size: stats[i]!.size, hashChunkSize }));
  const size = predictConfigSize(productInfo, sized);
  if (size <= MAX_METADATA_SIZE) return;
  const largest = sized.reduce((a, b) => (b.size > a.size ? b : a));
  let enough = hashChunkSize;
  while (
    enough < MAX_HASH_CHUNK_SIZE &&
    predictConfigSize(
      productInfo,
      sized.map((p) => ({ ...p, hashChunkSize: enough })),
    ) > MAX_METADATA_SIZE
  )
    enough *= 2;
  enough = Math.min(enough, MAX_HASH_CHUNK_SIZE);
  throw new OciError(
    'USAGE',
    `the config would be ${formatSize(size)}, more than the ${formatSize(MAX_METADATA_SIZE)} readers accept: payload "${largest.name}" (${formatSize(largest.size)}) alone has ${chunkCount(largest.size, hashChunkSize)} hash chunks of ${formatSize(hashChunkSize)}`,
    { hint: `use a larger --hash-chunk-size: at least ${sizeFlagValue(enough)} for these payloads (the default is 1MiB)` },
  );
}

/** What {@link checkOsImageBuild} found valid. */
export interface CheckedOsImageBuild {
  encoding: Required<PayloadEncoding>;
  productInfo: ProductInfo;
  stats: Stats[];
}

/**
 * Every check a build can make before it stores anything: encoding, product
 * info, payload names and files, and the size of the config they give.
 * buildOsImage runs it itself; callers that create a destination first (a
 * new layout directory) run it before they do.
 */
export async function checkOsImageBuild(options: OsImageBuildOptions): Promise<CheckedOsImageBuild> {
  const encoding = resolveEncoding(options.encoding);
  const productInfo = normalizeProductInfo(options.productInfo ?? {});
  const stats = await checkPayloadInputs(options.payloads);
  checkConfigSize(options.payloads, stats, productInfo, encoding.hashChunkSize);
  return { encoding, productInfo, stats };
}
