import { Args, Flags } from '@oclif/core';
import { BaseCommand, givenFlags } from '../cli/base.js';
import { withInterrupt } from '../cli/interrupt.js';
import { checkWritableFile, writeOutputFile } from '../cli/output-file.js';
import { osImageFlags, osImageOptionsFromFlags } from '../cli/payload-flags.js';
import { ProgressRenderer, progressFlags } from '../cli/progress.js';
import { prose } from '../cli/prose.js';
import { registryClientFromFlags, registryFlags, uploadFlags } from '../cli/registry-flags.js';
import { type PushReport, pushTags } from '../src/copy/push-report.js';
import { OciError } from '../src/errors.js';
import { parsePlatform, platformFromProductVariant } from '../src/image/platform.js';
import { tagRe } from '../src/oci/reference-grammar.js';
import { PayloadCache } from '../src/osimage/payload-cache.js';
import { pushOsImage } from '../src/osimage/push.js';
import { parseReference } from '../src/registry/reference.js';
import { addToIndexTag, type IndexTagReport, indexEntryFor } from '../src/tasks/index-tag.js';
import { pushFromLocal } from '../src/tasks/push-local.js';

export default class Push extends BaseCommand {
  static override summary = 'Build an OS image and push it to a registry in one pass, or push an existing layout.';
  static override description = prose`
    With --payload, each payload streams file → SHA-256 chunk hashes → zstd frames → chunked upload: the compressed
    bytes are never written to disk nor held whole in memory. Uploads resume after a reset connection, a timeout or a
    5xx, adapt their chunk size to what the registry accepts, and fall back to a whole-blob upload where chunks are
    refused. The config and the manifest follow; tags are written last, so an interrupted push tags nothing.

    An unchanged payload (same file, same content — re-hashed to be sure — and same settings) whose blob the registry
    already has is neither compressed nor uploaded again.

    With --from, an existing oci:DIR[:TAG] or oci-archive:FILE[:TAG] (any manifest, index or artifact) is copied
    verbatim: digests are unchanged.

    REF is [HOST[:PORT]/]REPO[:TAG][@DIGEST]; no host means Docker Hub. Loopback registries speak plain HTTP unless
    --no-plain-http. Credentials: --username with --password-stdin, OCI_OS_USERNAME/OCI_OS_PASSWORD, or the
    Docker/podman auth file.

    With --index-tag T, the image is also added to the image index at tag T of the same repository, for its platform:
    --platform OS/ARCH[/VARIANT], else the one its product variant names (x86_64 is linux/amd64, aarch64 linux/arm64,
    x86_64-debug linux/amd64/debug). The entry for the same platform is replaced, every other one kept, so the jobs of a
    release that build one architecture each end up under one tag. Jobs that push at the same time do not lose each
    other's entry: the index is written with If-Match where the registry gives an ETag (a 412 means merge again), and
    since many registries ignore If-Match, it is read back at once and after a pause, and merged again when the entry is
    missing.

    Prints HOST/REPO@DIGEST (with --index-tag, then HOST/REPO:T@INDEX-DIGEST, the index as this push left it); --json
    prints reference, digest, mediaType, size, tags and every blob with its status (uploaded, exists, mounted) and
    uploadedBytes, and with --index-tag an "index" object (tag, digest, platform, manifests, replaced, rounds).
  `;
  static override examples = [
    '<%= config.bin %> push ghcr.io/acme/myos:1.2.0 -p system=rootfs.img -p kernel.efi=kernel.efi --tag latest',
    'echo "$TOKEN" | <%= config.bin %> push registry.example.com/os/myos:1.2.0 -u ci --password-stdin -p system=rootfs.img --digest-file digest.txt',
    '<%= config.bin %> push localhost:5000/myos:dev --from oci:out/image:dev --json',
    {
      description: 'Each architecture job of a release pushes its own tag and joins the shared one (run in parallel):',
      command:
        '<%= config.bin %> push registry.example.com/myos:1.2.0-aarch64 -p system=rootfs.img -p kernel.efi=kernel.efi' + ' --variant aarch64 --index-tag 1.2.0',
    },
    {
      description: 'An image whose variant names no architecture:',
      command: '<%= config.bin %> push registry.example.com/myos:1.2.0-rpi --from oci:out/rpi:1.2.0 --index-tag 1.2.0' + ' --platform linux/arm64/rpi',
    },
  ];
  static override args = {
    ref: Args.string({ required: true, description: 'Destination [HOST[:PORT]/]REPO[:TAG][@DIGEST].' }),
  };
  static override flags = {
    ...osImageFlags,
    ...registryFlags,
    ...uploadFlags,
    ...progressFlags,
    from: Flags.string({
      description: 'Push an existing oci:DIR[:TAG] or oci-archive:FILE[:TAG] instead of building.',
      helpValue: 'SRC',
      exclusive: ['payload'],
    }),
    tag: Flags.string({ char: 't', multiple: true, multipleNonGreedy: true, description: 'Another tag for the same manifest (repeatable).' }),
    'digest-file': Flags.string({ description: 'Write the manifest digest to this file.', helpValue: 'FILE' }),
    jobs: Flags.integer({
      char: 'j',
      min: 1,
      max: 32,
      default: 4,
      description: 'Payloads encoded and uploaded at once (with --from: blob transfers and manifest reads/writes).',
    }),
    'index-tag': Flags.string({
      description: prose`Also add the image to the index at this tag of the same repository, merged with what the tag
        holds (the entry for the same platform is replaced).`,
      helpValue: 'TAG',
    }),
    platform: Flags.string({
      description: prose`The platform of the image in the --index-tag index [default: from the product variant: x86_64
        → linux/amd64, aarch64 → linux/arm64, x86_64-debug → linux/amd64/debug].`,
      helpValue: 'OS/ARCH[/VARIANT]',
      dependsOn: ['index-tag'],
    }),
    cache: Flags.boolean({
      default: true,
      allowNo: true,
      description: prose`Remember pushed payloads so unchanged ones are not compressed or uploaded again (--no-cache
        to always encode).`,
    }),
  };

  async run(): Promise<unknown> {
    const { args, flags, metadata } = await this.parse(Push);
    // Checked before a password is read or a byte is sent: found at the end, a bad tag or
    // an unwritable --digest-file would fail a push that has already published the image.
    const tags = pushTags(parseReference(args.ref), flags.tag);
    if (flags['digest-file']) await checkWritableFile(flags['digest-file']);
    const indexTag = flags['index-tag'];
    const platform = flags.platform !== undefined ? parsePlatform(flags.platform, { anyVariant: true }) : undefined;
    if (indexTag !== undefined) {
      if (!tagRe.test(indexTag)) {
        throw new OciError(
          'USAGE',
          `invalid --index-tag "${indexTag}": a tag is 1-128 characters of letters, digits, "_", "." and "-", ` + 'not starting with "." or "-"',
        );
      }
      if (tags.includes(indexTag)) {
        throw new OciError(
          'USAGE',
          `--index-tag ${indexTag} is also a tag of the image itself; ` + `give the image its own tag (REPO:${indexTag}-ARCH) and the index another`,
        );
      }
    }
    const progress = ProgressRenderer.fromFlags({ ...flags, json: this.jsonEnabled() });
    const client = await registryClientFromFlags(
      flags,
      { writes: args.ref },
      {
        onWarning: (m, registry) => process.stderr.write(`oci-os: warning from ${registry}: ${m}\n`),
        retry: { onRetry: (e) => progress.sink({ type: 'retry', ...e }) },
      },
    );
    let report: PushReport & { index?: IndexTagReport };
    try {
      // A push that was under way says what became of its upload sessions; one stopped before any was
      // opened gets the outcome given here.
      report = await withInterrupt(async (signal): Promise<PushReport> => {
        if (flags.from) {
          // Build flags that were given (--payload is refused by the parser; --layer-titles is what a push keeps anyway).
          const given = givenFlags({ flags, metadata });
          const building = Object.keys(osImageFlags)
            .filter((k) => k !== 'payload' && k !== 'layer-titles' && given.has(k))
            .map((k) => `--${k}`);
          if (given.has('layer-titles') && !flags['layer-titles']) building.push('--no-layer-titles');
          if (building.length > 0) {
            throw new OciError('USAGE', `--from pushes an existing image unchanged; ${building.join(', ')} only apply when building with --payload`);
          }
          return await pushFromLocal(client, flags.from, args.ref, { tags: flags.tag, jobs: flags.jobs, signal, progress: progress.sink });
        }
        if (!flags.payload?.length) throw new OciError('USAGE', 'nothing to push: give --payload NAME=PATH (repeatable) or --from oci:DIR[:TAG]');
        const options = await osImageOptionsFromFlags(flags);
        if (indexTag !== undefined && !platform && !platformFromProductVariant(options.productInfo.variant)) {
          const v = options.productInfo.variant;
          const why = v ? `the variant "${v}" names no known architecture` : 'no --variant was given';
          throw new OciError('USAGE', `--index-tag needs the image's platform: ${why}; give --platform OS/ARCH[/VARIANT] (e.g. linux/amd64)`);
        }
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
      if (indexTag !== undefined) {
        const done = report;
        report.index = await withInterrupt(async (signal) => {
          const repo = client.repository(parseReference(args.ref), { signal });
          const entry = await indexEntryFor(repo, { mediaType: done.mediaType, digest: done.digest, size: done.size }, platform);
          return addToIndexTag(repo, indexTag, entry, { signal, progress: progress.sink });
        }, `interrupted while adding the image to the index at ${indexTag}; the image is pushed and tagged`);
      }
    } finally {
      progress.close();
      await client.close();
    }
    if (flags['digest-file']) await writeOutputFile(flags['digest-file'], report.digest + '\n');
    if (!this.jsonEnabled()) {
      this.log(report.reference);
      if (report.index) this.log(`${report.index.reference}@${report.index.digest}`);
    }
    return report;
  }
}
