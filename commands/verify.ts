import { Args } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { withReadableLocation } from '../cli/interrupt.js';
import { allFlag, platformFlag, platformFromFlags } from '../cli/platform-flags.js';
import { prose } from '../cli/prose.js';
import { printRegistryWarning, registryClientFromFlags, registryFlags } from '../cli/registry-flags.js';
import { verifyJobsFlag } from '../cli/transfer.js';
import { selectRoot } from '../src/tasks/select-root.js';
import { verifyGraph } from '../src/tasks/verify.js';
import { formatSize } from '../src/util/size.js';

export default class Verify extends BaseCommand {
  static override summary = 'Check every blob, and every chunk of every OS image payload.';
  static override description = prose`
    SRC is a registry reference ([HOST[:PORT]/]REPO[:TAG][@DIGEST]), oci:DIR[:TAG|@DIGEST] or
    oci-archive:FILE[:TAG|@DIGEST].

    Every blob the manifest or index references is read and re-hashed against its digest and size. For OS images the
    manifest and config are checked as the format's reader checks them, and each payload is decompressed and every hash
    chunk compared with the config.

    An index is verified with every image it lists; --platform verifies only the image for one platform.

    Exit code 0 when everything matches; 5 on a mismatch, naming the blob, or the payload, chunk index and byte offset.
  `;
  static override examples = [
    '<%= config.bin %> verify oci:out/image:v1',
    '<%= config.bin %> verify registry.example.com/os/image:v1 --json',
    '<%= config.bin %> verify oci-archive:image.tar',
    '<%= config.bin %> verify registry.example.com/myos:1.2.0 --platform linux/arm64',
  ];
  static override args = {
    source: Args.string({ required: true, description: 'What to verify.' }),
  };
  static override flags = {
    ...platformFlag(prose`From an index, verify only the image for this platform (linux/arm64, linux/amd64/debug;
      x86_64 and aarch64 are read as amd64 and arm64). A single image must be for this platform.`),
    ...allFlag('Verify an index with every image it lists (the default).'),
    ...verifyJobsFlag,
    ...registryFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Verify);
    const platform = platformFromFlags(flags);
    const client = await registryClientFromFlags(flags, { reads: [args.source] }, { onWarning: printRegistryWarning });
    try {
      const { location, r } = await withReadableLocation(args.source, client, async (loc, signal) => {
        const { root } = await selectRoot(loc.store, loc.root, platform, loc.location);
        return { location: loc.location, r: await verifyGraph(loc.store, root, { jobs: flags.jobs, signal }) };
      });
      const summary = {
        reference: location,
        digest: r.root.digest,
        mediaType: r.root.mediaType,
        ok: true,
        manifests: r.manifests,
        blobs: r.blobs,
        bytes: r.bytes,
        payloads: r.payloads.map((p) => ({
          manifest: p.manifest,
          name: p.name,
          size: p.size,
          chunks: p.chunks,
          blobSize: p.blobSize,
          compression: p.compression,
        })),
      };
      if (!this.jsonEnabled()) {
        const chunks = r.payloads.reduce((n, p) => n + p.chunks, 0);
        const payloads = r.payloads.length ? `, ${r.payloads.length} payload(s) with ${chunks} chunk(s) verified` : '';
        this.log(`${location} ${r.root.digest}: ok — ${r.manifests} manifest(s), ${r.blobs} blob(s), ${formatSize(r.bytes)}${payloads}`);
      }
      return summary;
    } finally {
      await client.close();
    }
  }
}
