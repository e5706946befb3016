import { Args } from '@oclif/core';
import { BaseCommand } from '../../cli/base.js';
import { withInterrupt } from '../../cli/interrupt.js';
import { platformFlag, platformFromFlags } from '../../cli/platform-flags.js';
import { prose } from '../../cli/prose.js';
import { printRegistryWarning, registryClientFromFlags, registryFlags } from '../../cli/registry-flags.js';
import { unpackImage } from '../../src/image/unpack.js';

export default class ImageUnpack extends BaseCommand {
  static override summary = "Unpack a container image's layers into a directory.";
  static override description = prose`
    SRC is a registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]; from an index the image for --platform is
    taken (default: the only image, else the one for this machine, e.g. linux/amd64 on x86_64). Layers are applied in
    order with whiteouts (.wh.NAME deletes NAME, .wh..wh..opq clears what lower layers put in a directory); each layer's
    uncompressed digest is checked against the config's DiffID.

    Every entry is resolved inside DIR: absolute names, ".." components and writes through a symlink that leads outside
    DIR are refused with an error naming the entry. Modes (setuid, sticky), symlinks, hard links, FIFOs and mtimes are
    restored; owners and device nodes only when running as root; extended attributes when setfattr is installed. DIR is
    created when missing. Each layer is checked against its DiffID once it is unpacked: if the unpack fails, a DIR that
    was new or empty is left as it was (nothing unchecked stays), and a DIR that held files is reported to hold part of
    the image.
  `;
  static override examples = [
    '<%= config.bin %> image unpack oci:out/app:v1 ./rootfs',
    '<%= config.bin %> image unpack registry.example.com/app:v1 ./rootfs --platform linux/arm64',
  ];
  static override args = {
    source: Args.string({ required: true, description: 'The image.' }),
    directory: Args.string({ required: true, description: 'Directory to unpack into.' }),
  };
  static override flags = {
    ...platformFlag(prose`The image to take from an index (linux/arm64, linux/amd64/v3; x86_64 and aarch64 are read as
      amd64 and arm64) [default: the only image, else this machine's platform]. A single image must be for this
      platform.`),
    ...registryFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(ImageUnpack);
    const platform = platformFromFlags(flags);
    const client = await registryClientFromFlags(flags, { reads: [args.source] }, { onWarning: printRegistryWarning });
    try {
      const r = await withInterrupt((signal) => unpackImage(args.source, args.directory, { client, platform, signal }));
      if (r.skippedDevices > 0) process.stderr.write(`oci-os: warning: ${r.skippedDevices} device node(s) not created: that needs root\n`);
      if (r.skippedXattrs > 0) {
        process.stderr.write(`oci-os: warning: ${r.skippedXattrs} extended attribute(s) not restored: install setfattr (Debian package attr)\n`);
      }
      if (!this.jsonEnabled()) this.log(r.digest);
      return r;
    } finally {
      await client.close();
    }
  }
}
