/** Flags shared by every command that builds an OS image (`build`, `push`). */
import { Flags } from '@oclif/core';
import { OciError } from '../src/errors.js';
import { jsonMap } from '../src/oci/json.js';
import type { PayloadInput } from '../src/osimage/builder.js';
import type { ProductInfo } from '../src/osimage/format.js';
import type { Compression, PayloadEncoding } from '../src/osimage/payload.js';
import { readProductInfoFile } from '../src/osimage/product-file.js';
import { expandGitDescribe, gitAnnotations, readGitProvenance } from '../src/provenance/git.js';
import { parseSize } from '../src/util/size.js';
import { parseAnnotationFlags } from './annotations.js';
import type { FlagValues } from './base.js';
import { prose } from './prose.js';

export const osImageFlags = {
  payload: Flags.string({
    char: 'p',
    multiple: true,
    multipleNonGreedy: true,
    description: 'A payload as NAME=PATH (repeatable; order is kept). Names: letters, digits, ".", "_", "-".',
    helpValue: 'NAME=PATH',
  }),
  compression: Flags.option({ options: ['zstd', 'none'] as const satisfies readonly Compression[], default: 'zstd', description: 'Payload compression.' })(),
  'compression-level': Flags.integer({ min: 1, max: 19, default: 3, description: 'zstd level, 1 (fastest) to 19 (smallest).' }),
  'hash-chunk-size': Flags.string({
    default: '1MiB',
    description: 'Uncompressed bytes per SHA-256 chunk hash (more than 0, at most 16MiB).',
    helpValue: 'SIZE',
  }),
  'frame-size': Flags.string({
    description: 'Uncompressed bytes per independent zstd frame, a multiple of the hash chunk size [default: 4MiB].',
    helpValue: 'SIZE',
  }),
  'product-info': Flags.string({
    description: prose`JSON file with product_info fields (id, name, version, variant, commit_hash, commit_date,
      build_tree_dirty, components).`,
    helpValue: 'FILE',
  }),
  'product-id': Flags.string({ description: 'product_info.id (overrides --product-info).' }),
  'product-name': Flags.string({ description: 'product_info.name (overrides --product-info).' }),
  'product-version': Flags.string({
    description: prose`product_info.version (overrides --product-info); "{git-describe}" in it is replaced by \`git
      describe --tags --always --dirty\`.`,
  }),
  variant: Flags.string({ description: 'product_info.variant, usable in a tag; its first "-" part is the architecture (x86_64-debug).' }),
  'layer-titles': Flags.boolean({
    default: true,
    allowNo: true,
    description: prose`Annotate each payload layer with org.opencontainers.image.title so oras pull writes files.
      --no-layer-titles reproduces the reference builder's manifest byte for byte.`,
  }),
  git: Flags.boolean({
    description: prose`Fill product_info.commit_hash, commit_date and build_tree_dirty from the git repository of the
      current directory (untracked files that are not ignored count as dirty).`,
  }),
  annotation: Flags.string({
    multiple: true,
    multipleNonGreedy: true,
    description: 'A manifest annotation KEY=VALUE (repeatable; wins over --annotate-git).',
    helpValue: 'KEY=VALUE',
  }),
  'annotate-git': Flags.boolean({
    description: prose`Annotate the manifest with org.opencontainers.image.revision (HEAD), .source (origin URL
      without credentials) and .created (commit date).`,
  }),
};

/** Parses `NAME=PATH` payload flags. */
export function parsePayloadFlags(values: string[] | undefined): PayloadInput[] {
  if (!values || values.length === 0) throw new OciError('USAGE', 'no payloads given: add at least one --payload NAME=PATH');
  return values.map((v) => {
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) {
      throw new OciError('USAGE', `invalid --payload "${v}": write NAME=PATH, e.g. --payload system=out/rootfs.img`);
    }
    return { name: v.slice(0, eq), path: v.slice(eq + 1) };
  });
}

/** Turns the shared flags into build options. */
export async function osImageOptionsFromFlags(flags: FlagValues<typeof osImageFlags>): Promise<{
  payloads: PayloadInput[];
  encoding: PayloadEncoding;
  productInfo: Partial<ProductInfo>;
  layerTitles: boolean;
  annotations?: Record<string, string>;
}> {
  const payloads = parsePayloadFlags(flags.payload);
  const hashChunkSize = parseSize(flags['hash-chunk-size'], 'hash chunk size');
  const encoding: PayloadEncoding = {
    compression: flags.compression,
    level: flags['compression-level'],
    hashChunkSize,
    frameSize: flags['frame-size'] === undefined ? undefined : parseSize(flags['frame-size'], 'frame size'),
  };
  const productInfo: Partial<ProductInfo> = flags['product-info'] ? await readProductInfoFile(flags['product-info']) : {};
  if (flags['product-id'] !== undefined) productInfo.id = flags['product-id'];
  if (flags['product-name'] !== undefined) productInfo.name = flags['product-name'];
  if (flags['product-version'] !== undefined) productInfo.version = flags['product-version'];
  if (flags.variant !== undefined) productInfo.variant = flags.variant;
  const explicit = parseAnnotationFlags(flags.annotation);
  const git = flags.git || flags['annotate-git'] ? await readGitProvenance() : undefined;
  if (git && flags.git) Object.assign(productInfo, { commit_hash: git.commitHash, commit_date: git.commitDate, build_tree_dirty: git.dirty });
  if (productInfo.version !== undefined) productInfo.version = await expandGitDescribe(productInfo.version);
  const annotations = jsonMap([...Object.entries(git && flags['annotate-git'] ? gitAnnotations(git) : {}), ...Object.entries(explicit)]);
  return { payloads, encoding, productInfo, layerTitles: flags['layer-titles'], ...(Object.keys(annotations).length > 0 ? { annotations } : {}) };
}
