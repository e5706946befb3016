import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { allFlag, platformFlag, platformFromFlags } from '../cli/platform-flags.js';
import { progressFlags } from '../cli/progress.js';
import { prose } from '../cli/prose.js';
import { registryFlags, uploadFlags } from '../cli/registry-flags.js';
import { jobsFlag, runTransfer } from '../cli/transfer.js';

export default class Copy extends BaseCommand {
  static override summary = 'Copy an image, index or artifact between registries, OCI layouts and archives.';
  static override description = prose`
    SRC and DEST are each a registry reference ([HOST[:PORT]/]REPO[:TAG][@DIGEST]), oci:DIR[:TAG|@DIGEST] or
    oci-archive:FILE[:TAG|@DIGEST]. Everything is copied verbatim — manifests, indexes with every platform, configs and
    layers — so digests do not change. --platform copies one image of an index (container image or OS image) instead, as
    a plain manifest with its own digest.

    Blobs already at DEST are skipped; within one registry they are mounted; across registries they stream without a
    temporary copy. Every blob and manifest is checked against its digest and size while it streams, and an OS
    image's manifest and config are checked; with --verify-chunks, OS images copied into a layout or archive are
    also checked chunk by chunk before anything becomes visible. The tag is written last (DEST without a tag gets
    "latest").

    Prints the manifest digest; --json prints the per-blob results.
  `;
  static override examples = [
    '<%= config.bin %> copy oci:out/image:v1 registry.example.com/os/image:v1',
    '<%= config.bin %> copy ghcr.io/org/image:v1 ghcr.io/org/mirror:v1',
    '<%= config.bin %> copy localhost:5000/os/image:v1 oci-archive:image.tar:v1 --json',
    {
      description: 'Every architecture of an OS release to a mirror (digests unchanged):',
      command: '<%= config.bin %> copy --all registry.example.com/myos:1.2.0 mirror.example.com/myos:1.2.0',
    },
    {
      description: 'Only the x86_64 debug build:',
      command: '<%= config.bin %> copy registry.example.com/myos:1.2.0 oci:out/myos:1.2.0-debug' + ' --platform linux/amd64/debug',
    },
  ];
  static override args = {
    source: Args.string({ required: true, description: 'What to copy.' }),
    destination: Args.string({ required: true, description: 'Where to copy it.' }),
  };
  static override flags = {
    ...platformFlag(prose`From an index, copy only the image for this platform (linux/arm64, linux/amd64/debug; x86_64
      and aarch64 are read as amd64 and arm64). A single image must be for this platform.`),
    ...allFlag('Copy an index with every platform (the default; as skopeo copy --all).'),
    'verify-chunks': Flags.boolean({
      description: 'Also decode every OS image payload and check each chunk against its hash before a layout or archive is written (as verify does).',
    }),
    ...jobsFlag,
    ...registryFlags,
    ...uploadFlags,
    ...progressFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Copy);
    return runTransfer(this, flags, args.source, args.destination, { platform: platformFromFlags(flags), verifyOsImages: flags['verify-chunks'] });
  }
}
