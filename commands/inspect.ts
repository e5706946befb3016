import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { renderTemplate } from '../cli/format-template.js';
import { withReadableLocation } from '../cli/interrupt.js';
import { platformFlag, platformFromFlags } from '../cli/platform-flags.js';
import { prose } from '../cli/prose.js';
import { printRegistryWarning, registryClientFromFlags, registryFlags } from '../cli/registry-flags.js';
import { OciError } from '../src/errors.js';
import { inspect, renderSummary } from '../src/tasks/inspect.js';
import { selectRoot } from '../src/tasks/select-root.js';

export default class Inspect extends BaseCommand {
  static override summary = 'Show what an image, index or OS image holds.';
  static override description = prose`
    SRC is a registry reference ([HOST[:PORT]/]REPO[:TAG][@DIGEST]), oci:DIR[:TAG|@DIGEST] or
    oci-archive:FILE[:TAG|@DIGEST].

    OS images: product info and a table of payloads (size, stored size, compression, chunk count), with manifest and
    config checked as the format's reader checks them. Container images: platform, config and layers. Indexes: their
    manifests and platforms, and for OS images the product, version and variant each one declares.

    --platform shows the one image of an index for that platform (its digest is what a reader of single manifests, such
    as Monogon's, pins; "From index" names the index). --format prints fields of the summary: {{digest}}, {{platform}},
    {{productInfo.version}}, {{manifests.0.digest}} — any path into "summary" of --json.

    --raw prints the manifest bytes exactly as stored; --json prints {manifest, config, summary}.
  `;
  static override examples = [
    '<%= config.bin %> inspect oci:out/image:v1',
    '<%= config.bin %> inspect registry.example.com/os/image:v1 --json',
    '<%= config.bin %> inspect localhost:5000/library/alpine:3 --raw | jq .',
    {
      description: 'The arm64 manifest digest of a multi-architecture OS release, to pin:',
      command: '<%= config.bin %> inspect registry.example.com/myos:1.2.0 --platform linux/arm64' + " --format '{{digest}}'",
    },
    {
      description: 'The same from --json of the index:',
      command:
        '<%= config.bin %> inspect registry.example.com/myos:1.2.0 --json' +
        ' | jq -r \'.summary.manifests[] | select(.platform.architecture == "arm64" and .platform.variant == null) | .digest\'',
    },
  ];
  static override args = {
    source: Args.string({ required: true, description: 'What to inspect.' }),
  };
  static override flags = {
    raw: Flags.boolean({ description: 'Print the manifest (or index) bytes exactly as stored.', exclusive: ['format'] }),
    format: Flags.string({
      description: prose`Print fields of the summary: {{digest}}, {{platform}}, {{productInfo.version}},
        {{index.digest}}, … (any path into "summary" of --json).`,
      helpValue: 'TEMPLATE',
      exclusive: ['raw'],
    }),
    ...platformFlag(prose`From an index, show the image for this platform (linux/arm64, linux/amd64/debug; x86_64 and
      aarch64 are read as amd64 and arm64) [default: the index itself]. A single image must be for this platform.`),
    ...registryFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Inspect);
    const client = await registryClientFromFlags(flags, { reads: [args.source] }, { onWarning: printRegistryWarning });
    try {
      if (flags.format !== undefined && this.jsonEnabled()) throw new OciError('USAGE', 'give only one of --format, --json');
      const platform = platformFromFlags(flags);
      const r = await withReadableLocation(args.source, client, async (loc) => {
        const chosen = await selectRoot(loc.store, loc.root, platform, loc.location);
        const r = await inspect(loc.store, chosen.root, loc.location);
        if (chosen.index) r.summary.index = { digest: chosen.index.digest, mediaType: chosen.index.mediaType, size: chosen.index.size };
        if (chosen.platform && !r.summary.platform) r.summary.platform = chosen.platform;
        return r;
      });
      if (flags.format !== undefined) {
        this.log(renderTemplate(flags.format, r.summary));
        return undefined;
      }
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
