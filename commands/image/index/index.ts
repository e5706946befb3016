import { Args, Flags } from '@oclif/core';
import { BaseCommand, writtenSummary } from '../../../cli/base.js';
import { withInterrupt } from '../../../cli/interrupt.js';
import { checkWritableFile, writeOutputFile } from '../../../cli/output-file.js';
import { prose } from '../../../cli/prose.js';
import { printRegistryWarning, registryClientFromFlags, registryFlags, uploadFlags } from '../../../cli/registry-flags.js';
import { jobsFlag } from '../../../cli/transfer.js';
import { OciError } from '../../../src/errors.js';
import { keyValues } from '../../../src/image/inputs.js';
import { parsePlatform } from '../../../src/image/platform.js';
import type { Platform } from '../../../src/oci/descriptor.js';
import { jsonMap } from '../../../src/oci/json.js';
import { buildIndexTo } from '../../../src/tasks/index-image.js';

/** `--platform SRC=OS/ARCH[/VARIANT]` values by SRC (split at the last "=": a platform has none). */
function sourcePlatforms(values: string[] | undefined): Map<string, Platform> {
  const out = new Map<string, Platform>();
  for (const v of values ?? []) {
    const at = v.lastIndexOf('=');
    if (at <= 0) throw new OciError('USAGE', `invalid --platform "${v}": write SRC=OS/ARCH[/VARIANT], e.g. oci:out/generic:1.0=linux/amd64`);
    const src = v.slice(0, at);
    if (out.has(src)) throw new OciError('USAGE', `--platform names ${src} twice`);
    out.set(src, parsePlatform(v.slice(at + 1), { anyVariant: true }));
  }
  return out;
}

// In a directory of its own: oclif would make commands/image/index.ts the `image`
// topic's own command, hiding the topic's help and taking "index" as an argument.
export default class ImageIndex extends BaseCommand {
  static override summary = 'Combine per-platform container images or OS images into one index (one tag for every architecture).';
  static override description = prose`
    Each SRC is a container image or an OS image (registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]); an index
    as SRC contributes all its images. Every image is copied to the destination with its config and layers (or
    payloads), and listed with its platform; two images for one platform (OS, architecture and variant) are refused. The
    index is written last, then the tag. The same sources give the same index, byte for byte.

    Platforms: a container image's come from its config. An OS image is listed with artifactType
    application/vnd.monogon.os.image.v1 and the platform given with --platform SRC=OS/ARCH[/VARIANT]; without it, with
    the one its product variant names: the variant's first "-"-separated part is the architecture (x86_64 and amd64 are
    linux/amd64, aarch64 and arm64 are linux/arm64) and the rest the platform variant (x86_64-debug is
    linux/amd64/debug). An OS image whose variant names no architecture needs --platform.

    Readers that take one manifest only (Monogon's) pin the per-platform digest: "oci-os inspect REF --platform
    linux/arm64 --format '{{digest}}'" prints it.

    Also available as "oci-os index". Prints the index digest (--digest-file also writes it to a file); --json prints digest, media type, size, output (or
    reference with --push) and the entries with their platforms.
  `;
  static override aliases = ['index'];
  static override examples = [
    '<%= config.bin %> image index --output oci:out/app:v1 oci:out/app-amd64:v1 oci:out/app-arm64:v1',
    '<%= config.bin %> image index --push registry.example.com/app:v1 registry.example.com/app:v1-amd64 registry.example.com/app:v1-arm64',
    {
      description: 'OS images whose product variants are x86_64, aarch64 and x86_64-debug, under one tag:',
      command: '<%= config.bin %> index --push registry.example.com/myos:1.2.0 oci:out/x86_64:1.2.0' + ' oci:out/aarch64:1.2.0 oci:out/x86_64-debug:1.2.0',
    },
    {
      description: 'An OS image whose product variant names no architecture gets its platform on the command line:',
      command: '<%= config.bin %> index -o oci:out/myos:1.2.0 oci:out/generic:1.2.0 oci:out/arm:1.2.0' + ' --platform oci:out/generic:1.2.0=linux/amd64',
    },
  ];
  static override strict = false;
  static override usage = '<%= command.id %> (--output DEST | --push REF) SRC...';
  static override args = {
    src: Args.string({ description: 'Images to combine (one or more).' }),
  };
  static override flags = {
    output: Flags.string({ char: 'o', description: 'Write to oci:DIR[:TAG] or oci-archive:FILE[:TAG].', helpValue: 'DEST', exclusive: ['push'] }),
    push: Flags.string({ description: 'Push to a registry: HOST/REPO[:TAG] (default tag latest).', helpValue: 'REF', exclusive: ['output'] }),
    platform: Flags.string({
      multiple: true,
      multipleNonGreedy: true,
      description: prose`The platform of one SRC, written exactly as given (repeatable); needed for an OS image whose
        product variant names no architecture.`,
      helpValue: 'SRC=OS/ARCH[/VARIANT]',
    }),
    annotation: Flags.string({ multiple: true, multipleNonGreedy: true, description: 'Index annotation K=V (repeatable).', helpValue: 'K=V' }),
    'digest-file': Flags.string({ description: 'Write the index digest to this file.', helpValue: 'FILE' }),
    ...jobsFlag,
    ...registryFlags,
    ...uploadFlags,
  };

  async run(): Promise<unknown> {
    const { argv, flags } = await this.parse(ImageIndex);
    const sources = argv as string[];
    if (sources.length === 0) throw new OciError('USAGE', 'image index needs at least one SRC image to combine');
    if (!flags.output && !flags.push) throw new OciError('USAGE', 'image index needs --output DEST or --push REF');
    const dest = (flags.output ?? flags.push)!;
    const annotations = jsonMap(keyValues(flags.annotation, '--annotation'));
    const platforms = sourcePlatforms(flags.platform);
    // Checked before anything is written, as build and image build do: a release job must not publish and then fail.
    if (flags['digest-file']) await checkWritableFile(flags['digest-file']);
    const client = await registryClientFromFlags(flags, { writes: dest, reads: sources }, { onWarning: printRegistryWarning });
    try {
      const r = await withInterrupt((signal) => buildIndexTo(dest, sources, { annotations, platforms, jobs: flags.jobs, signal }, { client }));
      if (flags['digest-file']) await writeOutputFile(flags['digest-file'], `${r.descriptor.digest}\n`);
      if (!this.jsonEnabled()) this.log(r.descriptor.digest);
      return {
        ...writtenSummary(r.descriptor, r.output, !!flags.push),
        manifests: r.manifests.map((m) => ({
          digest: m.digest,
          size: m.size,
          platform: m.platform,
          ...(m.artifactType ? { artifactType: m.artifactType } : {}),
          source: m.source,
        })),
      };
    } finally {
      await client.close();
    }
  }
}
