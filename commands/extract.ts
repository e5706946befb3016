import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { withReadableLocation } from '../cli/interrupt.js';
import { platformFlag, platformFromFlags } from '../cli/platform-flags.js';
import { prose } from '../cli/prose.js';
import { printRegistryWarning, registryClientFromFlags, registryFlags } from '../cli/registry-flags.js';
import { OciError } from '../src/errors.js';
import { extractPayloadTo, extractPayloadToFile } from '../src/osimage/extract.js';
import { selectRoot } from '../src/tasks/select-root.js';

export default class Extract extends BaseCommand {
  static override summary = 'Write one payload of an OS image to a file or to standard output.';
  static override description = prose`
    SRC is a registry reference ([HOST[:PORT]/]REPO[:TAG][@DIGEST]), oci:DIR[:TAG|@DIGEST] or
    oci-archive:FILE[:TAG|@DIGEST] naming an OS image, or an index of OS images, from which the image for --platform is
    taken (default: the only one, else the one for this machine, e.g. linux/amd64 on x86_64).

    The payload is decompressed as it streams, and each hash chunk is written only after it matched the config's hash. A
    regular output file is written under a temporary name and renamed at the end, so a failed extract leaves no partial
    file (exit code 5 on a mismatch, naming the chunk). Devices and pipes are written in place. --output - writes to
    standard output.
  `;
  static override examples = [
    '<%= config.bin %> extract oci:out/image:v1 --payload system --output rootfs.img',
    '<%= config.bin %> extract registry.example.com/os/image:v1 --payload kernel.efi --output - > kernel.efi',
    '<%= config.bin %> extract oci-archive:image.tar --payload system --output /dev/sdX',
    {
      description: 'The kernel of the arm64 build of a multi-architecture release:',
      command: '<%= config.bin %> extract registry.example.com/myos:1.2.0 --platform linux/arm64 --payload kernel.efi' + ' --output kernel.efi',
    },
  ];
  static override args = {
    source: Args.string({ required: true, description: 'The OS image.' }),
  };
  static override flags = {
    payload: Flags.string({ char: 'p', required: true, description: 'Name of the payload to write.', helpValue: 'NAME' }),
    output: Flags.string({ char: 'o', required: true, description: 'File to write, or - for standard output.', helpValue: 'FILE|-' }),
    ...platformFlag(prose`From an index, the OS image for this platform (linux/arm64, linux/amd64/debug; x86_64 and
      aarch64 are read as amd64 and arm64) [default: the only image, else this machine's platform]. A single image
      must be for this platform.`),
    ...registryFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Extract);
    if (flags.output === '-' && this.jsonEnabled()) {
      throw new OciError('USAGE', '--json cannot be combined with --output - (standard output carries the payload)');
    }
    const platform = platformFromFlags(flags);
    const client = await registryClientFromFlags(flags, { reads: [args.source] }, { onWarning: printRegistryWarning });
    try {
      const { source, digest, r } = await withReadableLocation(args.source, client, async (loc, signal) => {
        const { root } = await selectRoot(loc.store, loc.root, platform, loc.location, { required: true });
        const written =
          flags.output === '-'
            ? await extractPayloadTo(loc.store, root, flags.payload, process.stdout, { signal })
            : await extractPayloadToFile(loc.store, root, flags.payload, flags.output, { signal });
        return { source: loc.location, digest: root.digest, r: written };
      });
      if (!this.jsonEnabled() && flags.output !== '-') this.log(`${r.output}: payload "${r.payload}", ${r.size} bytes, ${r.chunks} chunk(s) verified`);
      return { source, digest, ...r };
    } finally {
      await client.close();
    }
  }
}
