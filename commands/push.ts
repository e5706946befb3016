import { Flags, Args } from '@oclif/core';
import { BaseCommand } from '../cli/base.js';
import { osImageFlags, osImageOptionsFromFlags } from '../cli/payload-flags.js';
import { registryFlags, uploadFlags, registryClientFromFlags } from '../cli/registry-flags.js';
import { OciError } from '../src/errors.js';
import { PayloadCache } from '../src/osimage/payload-cache.js';
import { pushOsImage, pushTags, type PushReport } from '../src/osimage/push.js';
import { pushFromLocal } from '../src/copy/push-local.js';
import { parseReference } from '../src/registry/reference.js';
import { ProgressRenderer, progressFlags } from '../cli/progress.js';
import { checkWritableFile, writeOutputFile } from '../cli/output-file.js';
import { withInterrupt } from '../cli/transfer.js';

export default class Push extends BaseCommand {
  static override summary = 'Build an OS image and push it to a registry in one pass, or push an existing layout.';
  static override description = `With --payload, each payload streams file → SHA-256 chunk hashes → zstd frames → chunked upload: the compressed bytes are never written to disk nor held whole in memory. Uploads resume after a reset connection, a timeout or a 5xx, adapt their chunk size to what the registry accepts, and fall back to a whole-blob upload where chunks are refused. The config and the manifest follow; tags are written last, so an interrupted push tags nothing.

An unchanged payload (same file, same content — re-hashed to be sure — and same settings) whose blob the registry already has is neither compressed nor uploaded again.

With --from, an existing oci:DIR[:TAG] or oci-archive:FILE[:TAG] (any manifest, index or artifact) is copied verbatim: digests are unchanged.

REF is [HOST[:PORT]/]REPO[:TAG][@DIGEST]; no host means Docker Hub. Loopback registries speak plain HTTP unless --no-plain-http. Credentials: --username with --password-stdin, OCI_OS_USERNAME/OCI_OS_PASSWORD, or the Docker/podman auth file.

Prints HOST/REPO@DIGEST; --json prints reference, digest, mediaType, size, tags and every blob with its status (uploaded, exists, mounted) and uploadedBytes.`;
  static override examples = [
    '<%= config.bin %> push ghcr.io/acme/myos:1.2.0 -p system=rootfs.img -p kernel.efi=kernel.efi --tag latest',
    'echo "$TOKEN" | <%= config.bin %> push registry.example.com/os/myos:1.2.0 -u ci --password-stdin -p system=rootfs.img --digest-file digest.txt',
    '<%= config.bin %> push localhost:5000/myos:dev --from oci:out/image:dev --json',
  ];
  static override args = {
    ref: Args.string({ required: true, description: 'Destination [HOST[:PORT]/]REPO[:TAG][@DIGEST].' }),
  };
  static override flags = {
    ...osImageFlags,
    ...registryFlags,
    ...uploadFlags,
    ...progressFlags,
    from: Flags.string({ description: 'Push an existing oci:DIR[:TAG] or oci-archive:FILE[:TAG] instead of building.', helpValue: 'SRC', exclusive: ['payload'] }),
    tag: Flags.string({ char: 't', multiple: true, multipleNonGreedy: true, description: 'Another tag for the same manifest (repeatable).' }),
    'digest-file': Flags.string({ description: 'Write the manifest digest to this file.', helpValue: 'FILE' }),
    jobs: Flags.integer({ char: 'j', min: 1, max: 32, default: 4, description: 'Payloads encoded and uploaded at once (with --from: blob transfers and manifest reads/writes).' }),
    cache: Flags.boolean({ default: true, allowNo: true, description: 'Remember pushed payloads so unchanged ones are not compressed or uploaded again (--no-cache to always encode).' }),
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Push);
    // Checked before a password is read or a byte is sent: found at the end, a bad tag or
    // an unwritable --digest-file would fail a push that has already published the image.
    pushTags(parseReference(args.ref), flags.tag);
    if (flags['digest-file']) await checkWritableFile(flags['digest-file']);
    const progress = ProgressRenderer.fromFlags({ ...flags, json: this.jsonEnabled() });
    const client = await registryClientFromFlags(flags, { writes: args.ref }, {
      onWarning: (m, registry) => process.stderr.write(`oci-os: warning from ${registry}: ${m}\n`),
      retry: { onRetry: (e) => progress.sink({ type: 'retry', ...e }) },
    });
    let report: PushReport;
    try {
      // A push that was under way says what became of its upload sessions; one stopped before any was
      // opened gets the outcome given here.
      report = await withInterrupt(async (signal): Promise<PushReport> => {
        if (flags.from) {
          const building = Object.keys(osImageFlags).filter((k) => k !== 'payload' && k !== 'layer-titles' && this.argv.some((a) => a === `--${k}` || a.startsWith(`--${k}=`)));
          if (building.length > 0 || this.argv.includes('--no-layer-titles')) {
            throw new OciError('USAGE', `--from pushes an existing image unchanged; ${[...building.map((k) => `--${k}`), ...(this.argv.includes('--no-layer-titles') ? ['--no-layer-titles'] : [])].join(', ')} only apply when building with --payload`);
          }
          return await pushFromLocal(client, flags.from, args.ref, { tags: flags.tag, jobs: flags.jobs, signal, progress: progress.sink });
        }
        if (!flags.payload?.length) throw new OciError('USAGE', 'nothing to push: give --payload NAME=PATH (repeatable) or --from oci:DIR[:TAG]');
        const options = await osImageOptionsFromFlags(flags);
        const { image: _image, ...rest } = await pushOsImage(client, args.ref, {
          ...options,
          jobs: flags.jobs,
          tags: flags.tag,
          signal,
          progress: progress.sink,
          cache: flags.cache ? new PayloadCache() : undefined,
        });
        return rest;
      }, 'push interrupted; nothing was tagged');
    } finally {
      progress.close();
      await client.close();
    }
    if (flags['digest-file']) await writeOutputFile(flags['digest-file'], report.digest + '\n');
    if (!this.jsonEnabled()) this.log(report.reference);
    return report;
  }
}
