import { setFlagsFromString } from 'node:v8';
import { Flags } from '@oclif/core';
import { BaseCommand, writtenSummary } from '../../cli/base.js';
import { withInterrupt } from '../../cli/interrupt.js';
import { checkWritableFile, writeOutputFile } from '../../cli/output-file.js';
import { prose } from '../../cli/prose.js';
import { printRegistryWarning, registryClientFromFlags, registryFlags, uploadFlags } from '../../cli/registry-flags.js';
import { OciError } from '../../src/errors.js';
import { buildOptionsFromInputs } from '../../src/image/inputs.js';
import { buildImageTo } from '../../src/image/publish.js';

export default class ImageBuild extends BaseCommand {
  static override summary = 'Build a container image from directories and tar files, optionally on a base image.';
  static override description = prose`
    Each --rootfs/--layer (a directory, or a tar, tar.gz or tar.zst file) becomes one layer, in order. Layers are
    reproducible: entries sorted by name (tar inputs keep their order), POSIX pax format, numeric owners only, mtimes
    clamped to --source-date-epoch or $SOURCE_DATE_EPOCH; hard links, symlinks, empty directories, setuid/setgid/sticky
    bits, device nodes and xattrs are kept. Each layer streams through hashing and compression into the destination
    without being held in memory. DiffIDs depend only on the inputs; compressed digests also on the compressor build
    (same Node.js and oci-os versions give the same bytes).

    With --base (a registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]) the base's layers are reused by digest
    and its entrypoint, cmd, env, working directory, user, ports, volumes, labels and stop signal are inherited; flags
    override them (a new --entrypoint drops the inherited cmd unless --cmd is given). A layer whose DiffID the base
    already has is not added again.

    A destination (oci: layout, or oci-archive: file and its temporary files) inside a directory input is left out of
    that layer. In a tar input a hard link must follow its target: one whose target is missing or excluded fails the
    build.

    With --layering components, the --rootfs directory becomes up to --max-layers layers (default 64, at most 250) that
    follow what its files belong to: packages of the dpkg, apk, pacman and rpm databases in the tree (rpm through the
    rpm program), Nix store paths, the user.component extended attribute (which overrides them), large files on their
    own, the rest grouped by directory. Each layer's annotations name its components (inspect shows them). With
    --previous (the image this one replaces) every layer whose components are all unchanged is kept byte for byte and is
    not uploaded again; the rest is packed into new layers. Other --layer inputs stay one layer each.

    --output writes an OCI layout or archive (nothing is visible until the end); --push streams layers straight to a
    registry and writes the tag last. Prints the manifest digest (--digest-file also writes it to a file); --json prints
    digest, media type, size, output (or reference with --push), layers and config digest.
  `;
  static override examples = [
    '<%= config.bin %> image build --rootfs ./rootfs --entrypoint \'["/bin/app"]\' --output oci:out/app:v1',
    '<%= config.bin %> image build --base docker.io/library/alpine:3.20 --layer ./app --cmd "app --serve" --expose 8080 --push registry.example.com/app:v1',
    'SOURCE_DATE_EPOCH=1700000000 <%= config.bin %> image build --rootfs ./rootfs --owner 0:0 --layer-compression zstd --output oci-archive:app.tar',
    '<%= config.bin %> image build --rootfs ./debian-rootfs --layering components --source-date-epoch 1700000000 --push registry.example.com/os:v1',
    '<%= config.bin %> image build --rootfs ./debian-rootfs --layering components --previous registry.example.com/os:v1' +
      ' --source-date-epoch 1700000000 --push registry.example.com/os:v2',
    '<%= config.bin %> image build --rootfs ./rootfs --layering components --max-layers 16 --previous oci:out/os:v1 --output oci:out/os:v2 --json',
  ];
  static override flags = {
    output: Flags.string({ char: 'o', description: 'Write to oci:DIR[:TAG] or oci-archive:FILE[:TAG].', helpValue: 'DEST', exactlyOne: ['output', 'push'] }),
    push: Flags.string({ description: 'Push to a registry: HOST/REPO[:TAG] (default tag latest).', helpValue: 'REF', exactlyOne: ['output', 'push'] }),
    rootfs: Flags.string({ description: 'The first layer: a directory or a tar file.', helpValue: 'PATH' }),
    layer: Flags.string({
      char: 'l',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A layer (repeatable, in order): a directory or a tar, tar.gz or tar.zst file.',
      helpValue: 'PATH',
    }),
    base: Flags.string({ description: 'Image to build on: registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG].', helpValue: 'SRC' }),
    entrypoint: Flags.string({ description: 'Entrypoint: a JSON array (["/bin/app","-v"]) or a shell command; "" clears it.', helpGroup: 'CONFIG' }),
    cmd: Flags.string({ description: 'Default arguments: a JSON array or a shell command; "" clears it.', helpGroup: 'CONFIG' }),
    env: Flags.string({
      char: 'e',
      multiple: true,
      multipleNonGreedy: true,
      description: 'Environment variable K=V (repeatable; replaces an inherited one of the same name).',
      helpValue: 'K=V',
      helpGroup: 'CONFIG',
    }),
    workdir: Flags.string({ description: 'Working directory.', helpValue: 'DIR', helpGroup: 'CONFIG' }),
    user: Flags.string({ description: 'User (name, UID, or UID:GID).', helpGroup: 'CONFIG' }),
    expose: Flags.string({
      multiple: true,
      multipleNonGreedy: true,
      description: 'Exposed port PORT[/tcp|udp|sctp] (repeatable).',
      helpValue: 'PORT',
      helpGroup: 'CONFIG',
    }),
    volume: Flags.string({ multiple: true, multipleNonGreedy: true, description: 'Volume mount point (repeatable).', helpValue: 'PATH', helpGroup: 'CONFIG' }),
    label: Flags.string({ multiple: true, multipleNonGreedy: true, description: 'Config label K=V (repeatable).', helpValue: 'K=V', helpGroup: 'CONFIG' }),
    'stop-signal': Flags.string({ description: 'Signal that stops the container (SIGTERM).', helpGroup: 'CONFIG' }),
    platform: Flags.string({
      description: prose`OS/ARCH[/VARIANT] of the image [default: the base's, else linux/amd64]; chooses from a
        multi-platform base.`,
      helpGroup: 'CONFIG',
    }),
    annotation: Flags.string({
      multiple: true,
      multipleNonGreedy: true,
      description: 'Manifest annotation K=V (repeatable).',
      helpValue: 'K=V',
      helpGroup: 'CONFIG',
    }),
    'layer-compression': Flags.string({ options: ['gzip', 'zstd', 'none'], default: 'gzip', description: 'Compression of new layers.', helpGroup: 'LAYERS' }),
    'compression-level': Flags.integer({ min: 1, max: 19, description: 'gzip level 1-9 [default: 6] or zstd level 1-19 [default: 3].', helpGroup: 'LAYERS' }),
    'source-date-epoch': Flags.string({
      description: prose`Clamp mtimes and set created/history times to these seconds since 1970 [default:
        $SOURCE_DATE_EPOCH; without either, mtimes are kept and no time is recorded].`,
      helpValue: 'SECONDS',
      helpGroup: 'LAYERS',
    }),
    owner: Flags.string({ description: 'Give every entry this numeric owner, e.g. 0:0 [default: keep].', helpValue: 'UID:GID', helpGroup: 'LAYERS' }),
    exclude: Flags.string({
      multiple: true,
      multipleNonGreedy: true,
      description: prose`Drop paths (relative, no leading /) matching this regular expression (repeatable). From a
        tar, exclude both names of a hard link or neither.`,
      helpValue: 'REGEX',
      helpGroup: 'LAYERS',
    }),
    layering: Flags.string({
      options: ['inputs', 'components'],
      default: 'inputs',
      description: prose`inputs: one layer per --rootfs/--layer; components: the --rootfs directory as layers of its
        packages and other components.`,
      helpGroup: 'LAYERS',
    }),
    'max-layers': Flags.integer({
      min: 1,
      max: 250,
      description: 'With --layering components: at most this many layers from --rootfs [default: 64].',
      helpGroup: 'LAYERS',
    }),
    previous: Flags.string({
      description: prose`With --layering components: the image this one replaces (registry reference, oci:DIR[:TAG] or
        oci-archive:FILE[:TAG]); its unchanged layers are kept.`,
      helpValue: 'SRC',
      helpGroup: 'LAYERS',
    }),
    'digest-file': Flags.string({ description: 'Write the manifest digest to this file.', helpValue: 'FILE' }),
    // As build and push take it; image build reports no progress, only notes about skipped layers.
    quiet: Flags.boolean({ char: 'q', description: 'Print only the result (and warnings): no notes about layers the base already has.', helpGroup: 'OUTPUT' }),
    ...registryFlags,
    ...uploadFlags,
  };

  async run(): Promise<unknown> {
    // V8 doubles its young generation each time most of it survives a
    // scavenge, as the entries of a --rootfs tree do while it is read, and
    // keeps it (up to 3 x 16 MiB) for the rest of the build. Kept at its
    // first size: a 1 GiB tree as 64 layers peaked at 150-160 MiB instead of
    // 172-184 (as one layer: 139-145 instead of 149-154), in the same time.
    // A command-line choice for this process, so not in src/.
    setFlagsFromString('--semi-space-growth-factor=1');
    const { flags } = await this.parse(ImageBuild);
    const options = buildOptionsFromInputs({
      rootfs: flags.rootfs,
      layer: flags.layer,
      base: flags.base,
      entrypoint: flags.entrypoint,
      cmd: flags.cmd,
      env: flags.env,
      workdir: flags.workdir,
      user: flags.user,
      expose: flags.expose,
      volume: flags.volume,
      label: flags.label,
      stopSignal: flags['stop-signal'],
      platform: flags.platform,
      annotation: flags.annotation,
      layerCompression: flags['layer-compression'],
      compressionLevel: flags['compression-level'],
      sourceDateEpoch: flags['source-date-epoch'],
      owner: flags.owner,
      exclude: flags.exclude,
      layering: flags.layering === 'inputs' ? undefined : flags.layering,
      maxLayers: flags['max-layers'],
      previous: flags.previous,
    });
    const dest = flags.output ?? flags.push;
    if (!dest) throw new OciError('USAGE', 'give --output DEST or --push REF');
    // Checked before any layer is built: found at the end, an unwritable file would fail
    // a build that has already written (or pushed and tagged) the image.
    if (flags['digest-file']) await checkWritableFile(flags['digest-file']);
    const client = await registryClientFromFlags(flags, { writes: dest, reads: [flags.base, flags.previous] }, { onWarning: printRegistryWarning });
    try {
      const r = await withInterrupt((signal) => buildImageTo(dest, { ...options, signal }, { client }));
      for (const w of r.warnings) process.stderr.write(`oci-os: warning: ${w}\n`);
      if (!flags.quiet) for (const s of r.skipped) process.stderr.write(`oci-os: ${s}: the base image already has this layer; not added again\n`);
      const planned = r.layers.filter((l) => l.components);
      if (planned.length > 0 && !flags.quiet) {
        const kept = planned.filter((l) => l.reused);
        const present = kept.filter((l) => l.status === 'exists').length;
        process.stderr.write(
          `oci-os: ${planned.length} layers from components; ` +
            `${kept.length} kept from the previous image (${present} already at the destination), ${planned.length - kept.length} new\n`,
        );
      }
      if (flags['digest-file']) await writeOutputFile(flags['digest-file'], r.descriptor.digest + '\n');
      if (!this.jsonEnabled()) this.log(r.descriptor.digest);
      return {
        ...writtenSummary(r.descriptor, r.output, !!flags.push),
        config: { digest: r.configDescriptor.digest, size: r.configDescriptor.size },
        layers: r.layers.map((l) => ({
          digest: l.digest,
          diffID: l.diffID,
          size: l.size,
          mediaType: l.mediaType,
          source: l.source,
          ...(l.components && { components: l.components, reused: l.reused, status: l.status }),
        })),
        ...(r.baseDigest ? { base: { digest: r.baseDigest, blobs: r.baseBlobs } } : {}),
        skipped: r.skipped,
      };
    } finally {
      await client.close();
    }
  }
}
