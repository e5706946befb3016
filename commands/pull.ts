import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { allFlag, platformFlag, platformFromFlags } from '../cli/platform-flags.js';
import { progressFlags } from '../cli/progress.js';
import { prose } from '../cli/prose.js';
import { registryFlags } from '../cli/registry-flags.js';
import { jobsFlag, runTransfer } from '../cli/transfer.js';
import { parseLocation } from '../src/copy/locations.js';

export default class Pull extends BaseCommand {
  static override summary = 'Pull an image, index or OS image from a registry into an OCI layout or archive.';
  static override description = prose`
    REF is [HOST[:PORT]/]REPO[:TAG][@DIGEST] (no tag: "latest"). OCI and Docker manifests and indexes are accepted; an
    index (of container images or OS images) is pulled whole, with every platform, unless --platform picks one image,
    which is then pulled as a plain manifest (a layout of one OS image, as Monogon's layout reader wants it).

    Every blob and manifest is checked against its digest and size while it downloads, and an OS image's manifest
    and config are checked as its reader checks them; only then is the layout's index.json (or the archive file)
    written, so nothing unverified becomes visible. --verify-chunks also decodes every payload and checks each chunk
    against the config's hashes (as verify and extract do). A download cut mid-blob resumes with an HTTP Range
    request.

    Prints the manifest digest; --json prints the per-blob results.
  `;
  static override examples = [
    '<%= config.bin %> pull registry.example.com/os/image:v1 --output oci:images:v1',
    '<%= config.bin %> pull localhost:5000/os/image@sha256:... --output oci-archive:image.tar',
    '<%= config.bin %> pull ghcr.io/org/image:v1 -o oci:images --jobs 8 --json',
    {
      description: 'Only the arm64 OS image of a multi-architecture release:',
      command: '<%= config.bin %> pull registry.example.com/myos:1.2.0 --platform linux/arm64 -o oci:out/myos',
    },
  ];
  static override args = {
    reference: Args.string({ required: true, description: 'Registry reference to pull.' }),
  };
  static override flags = {
    output: Flags.string({
      char: 'o',
      required: true,
      description: prose`Where to write: oci:DIR[:TAG] or oci-archive:FILE[:TAG] (TAG defaults to the reference's tag,
        else "latest").`,
      helpValue: 'DEST',
    }),
    ...platformFlag(prose`From an index, pull only the image for this platform (linux/arm64, linux/amd64/debug; x86_64
      and aarch64 are read as amd64 and arm64). A single image must be for this platform.`),
    ...allFlag('Pull an index with every platform (the default; as skopeo copy --all).'),
    'verify-chunks': Flags.boolean({
      description: 'Also decode every OS image payload and check each chunk against its hash before the image is written (as verify does).',
    }),
    ...jobsFlag,
    ...registryFlags,
    ...progressFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Pull);
    return runTransfer(this, flags, args.reference, withDefaultTag(flags.output, args.reference), {
      sourceKinds: ['registry'],
      destinationKinds: ['oci', 'oci-archive'],
      platform: platformFromFlags(flags),
      verifyOsImages: flags['verify-chunks'],
    });
  }
}

/** A local destination without a tag takes the reference's tag (errors are left to transfer()). */
function withDefaultTag(output: string, reference: string): string {
  try {
    const dest = parseLocation(output);
    const src = parseLocation(reference);
    if (dest.kind !== 'registry' && !dest.tag && !dest.digest && src.reference?.tag) return `${output}:${src.reference.tag}`;
  } catch {
    // reported by transfer()
  }
  return output;
}
