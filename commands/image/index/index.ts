import { Args, Flags } from '@oclif/core';
import { BaseCommand, writtenSummary } from '../../../cli/base.js';
import { registryClientFromFlags, registryFlags, uploadFlags } from '../../../cli/registry-flags.js';
import { jobsFlag, withInterrupt } from '../../../cli/transfer.js';
import { OciError } from '../../../src/errors.js';
import { buildIndexTo } from '../../../src/image/index-image.js';
import { keyValues } from '../../../src/image/inputs.js';
import { jsonMap } from '../../../src/oci/json.js';

// In a directory of its own: oclif would make commands/image/index.ts the `image`
// topic's own command, hiding the topic's help and taking "index" as an argument.
export default class ImageIndex extends BaseCommand {
  static override summary = 'Combine per-platform images into one multi-platform index.';
  static override description = `Each SRC is an image (registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]); an index as SRC contributes all its images. Every image is copied to the destination with its config and layers, and listed with the platform its config declares; two images for one platform are refused. The index is written last, then the tag.

Prints the index digest; --json prints digest, media type, size, output (or reference with --push) and the entries with their platforms.`;
  static override examples = [
    '<%= config.bin %> image index --output oci:out/app:v1 oci:out/app-amd64:v1 oci:out/app-arm64:v1',
    '<%= config.bin %> image index --push registry.example.com/app:v1 registry.example.com/app:v1-amd64 registry.example.com/app:v1-arm64',
  ];
  static override strict = false;
  static override usage = 'image index (--output DEST | --push REF) SRC...';
  static override args = {
    src: Args.string({ description: 'Images to combine (one or more).' }),
  };
  static override flags = {
    output: Flags.string({ char: 'o', description: 'Write to oci:DIR[:TAG] or oci-archive:FILE[:TAG].', helpValue: 'DEST', exclusive: ['push'] }),
    push: Flags.string({ description: 'Push to a registry: HOST/REPO[:TAG] (default tag latest).', helpValue: 'REF', exclusive: ['output'] }),
    annotation: Flags.string({ multiple: true, multipleNonGreedy: true, description: 'Index annotation K=V (repeatable).', helpValue: 'K=V' }),
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
    const client = await registryClientFromFlags(flags, { writes: dest, reads: sources }, { onWarning: (m, r) => process.stderr.write(`oci-os: warning: ${r}: ${m}\n`) });
    try {
      const r = await withInterrupt((signal) => buildIndexTo(dest, sources, { annotations, jobs: flags.jobs, signal }, { client }));
      if (!this.jsonEnabled()) this.log(r.descriptor.digest);
      return {
        ...writtenSummary(r.descriptor, r.output, !!flags.push),
        manifests: r.manifests.map((m) => ({ digest: m.digest, size: m.size, platform: m.platform, source: m.source })),
      };
    } finally {
      await client.close();
    }
  }
}
