import { Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { withInterrupt } from '../cli/interrupt.js';
import { checkWritableFile, writeOutputFile } from '../cli/output-file.js';
import { osImageFlags, osImageOptionsFromFlags } from '../cli/payload-flags.js';
import { ProgressRenderer, progressFlags } from '../cli/progress.js';
import { prose } from '../cli/prose.js';
import { formatLocalLocation, parseLocalLocation } from '../src/ocilayout/location.js';
import { buildOsImageToLocal } from '../src/osimage/build-local.js';

export default class Build extends BaseCommand {
  static override summary = 'Build an OS image artifact into an OCI layout directory or archive.';
  static override description = prose`
    Each payload is read once, in bounded pieces: SHA-256 per hash chunk of the uncompressed bytes, then (by default)
    zstd in independent frames closed by a seek table, so readers can fetch and verify single chunks. The same inputs
    and flags give the same bytes and manifest digest on every run and machine.

    DEST is oci:DIR[:TAG] (an OCI image layout directory) or oci-archive:FILE[:TAG] (the same layout as a tar file). TAG
    defaults to "latest"; other images in an existing layout are kept and an existing TAG is moved. Nothing becomes
    visible until every blob is in place.

    Prints the manifest digest (--digest-file also writes it to a file); --json prints the digest, media types, size,
    output, every payload and warnings. A build that leaves more than one image in oci:DIR warns (on stderr, or in
    warnings with --json): Monogon's reader takes a layout holding one.
  `;
  static override examples = [
    '<%= config.bin %> build --payload system=rootfs.img --payload kernel.efi=kernel.efi --output oci:out/image:v1.2.0',
    '<%= config.bin %> build -p system=rootfs.img --product-id myos --product-version 1.2.0 --variant x86_64 --output oci-archive:myos.tar',
    '<%= config.bin %> build -p system=rootfs.img --compression none --no-layer-titles --output oci:out/image --json',
  ];
  static override flags = {
    ...osImageFlags,
    ...progressFlags,
    output: Flags.string({ char: 'o', required: true, description: 'Where to write: oci:DIR[:TAG] or oci-archive:FILE[:TAG].', helpValue: 'DEST' }),
    'digest-file': Flags.string({ description: 'Write the manifest digest to this file.', helpValue: 'FILE' }),
  };

  async run(): Promise<unknown> {
    const { flags } = await this.parse(Build);
    // Checked before a payload is read: found at the end, an unwritable file would fail
    // a build that has already written and tagged the image.
    if (flags['digest-file']) await checkWritableFile(flags['digest-file']);
    const options = await osImageOptionsFromFlags(flags);
    const progress = ProgressRenderer.fromFlags({ ...flags, json: this.jsonEnabled() });
    try {
      // SIGINT and SIGTERM (and a second one during clean-up) stop the build and remove what it wrote.
      const r = await withInterrupt((signal) => buildOsImageToLocal(flags.output, { ...options, progress: progress.sink }, signal));
      progress.close();
      const summary = {
        digest: r.descriptor.digest,
        mediaType: r.descriptor.mediaType,
        artifactType: JSON.parse(r.manifest.toString('utf8')).artifactType as string,
        size: r.descriptor.size,
        output: r.output,
        payloads: r.payloads.map((p) => ({
          name: p.name,
          size: p.size,
          digest: p.digest,
          blobSize: p.blobSize,
          mediaType: p.mediaType,
          chunkCount: p.chunkCount,
        })),
        warnings: [] as string[],
      };
      if (r.images !== undefined && r.images > 1) {
        const layout = formatLocalLocation({ ...parseLocalLocation(flags.output), tag: undefined, digest: undefined });
        summary.warnings.push(`${layout} now holds ${r.images} images; Monogon's reader accepts a layout with one`);
      }
      if (flags['digest-file']) await writeOutputFile(flags['digest-file'], summary.digest + '\n');
      if (!this.jsonEnabled()) {
        for (const w of summary.warnings) process.stderr.write(`oci-os: warning: ${w}\n`);
        this.log(summary.digest);
      }
      return summary;
    } finally {
      progress.close();
    }
  }
}
