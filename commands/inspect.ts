import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { registryClientFromFlags, registryFlags } from '../cli/registry-flags.js';
import { withReadableLocation } from '../cli/transfer.js';
import { inspect, renderSummary } from '../src/copy/inspect.js';

export default class Inspect extends BaseCommand {
  static override summary = 'Show what an image, index or OS image holds.';
  static override description = `SRC is a registry reference ([HOST[:PORT]/]REPO[:TAG][@DIGEST]), oci:DIR[:TAG|@DIGEST] or oci-archive:FILE[:TAG|@DIGEST].

OS images: product info and a table of payloads (size, stored size, compression, chunk count), with manifest and config checked as the format's reader checks them. Container images: platform, config and layers. Indexes: their manifests and platforms.

--raw prints the manifest bytes exactly as stored; --json prints {manifest, config, summary}.`;
  static override examples = [
    '<%= config.bin %> inspect oci:out/image:v1',
    '<%= config.bin %> inspect registry.example.com/os/image:v1 --json',
    '<%= config.bin %> inspect localhost:5000/library/alpine:3 --raw | jq .',
  ];
  static override args = {
    source: Args.string({ required: true, description: 'What to inspect.' }),
  };
  static override flags = {
    raw: Flags.boolean({ description: 'Print the manifest (or index) bytes exactly as stored.' }),
    ...registryFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Inspect);
    const client = await registryClientFromFlags(flags, { reads: [args.source] }, { onWarning: (m, r) => process.stderr.write(`oci-os: warning: ${r}: ${m}\n`) });
    try {
      const r = await withReadableLocation(args.source, client, (loc) => inspect(loc.store, loc.root, loc.location));
      if (flags.raw) {
        await new Promise<void>((resolve, reject) => process.stdout.write(r.manifestBytes, (err) => (err ? reject(err) : resolve())));
        return undefined;
      }
      if (!this.jsonEnabled()) this.log(renderSummary(r.summary));
      return { manifest: r.manifest, config: r.config ?? null, summary: r.summary };
    } finally {
      await client.close();
    }
  }
}
