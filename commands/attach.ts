import { Args, Flags } from '@oclif/core';
import { parseAnnotationFlags } from '../cli/annotations.js';
import { BaseCommand, stderrLine } from '../cli/base.js';
import { prose } from '../cli/prose.js';
import { registryClientFromFlags, registryFlags, uploadFlags } from '../cli/registry-flags.js';
import { attach } from '../src/registry/referrers.js';

export default class Attach extends BaseCommand {
  static override summary = 'Attach files to an image as an artifact that refers to it (SBOM, signature, release notes).';
  static override description = prose`
    Pushes an OCI artifact manifest: artifactType TYPE, the empty JSON config, one layer per --file (titled with its
    file name), and subject = the manifest REF names. Find it again with "oci-os referrers REF".

    Registries with the referrers API index it themselves (they answer the push with OCI-Subject). For the others the
    referrers tag schema is used: the index at tag sha256-<hex of the subject digest> is read, de-duplicated, extended
    and written back, with If-Match when the registry gives an ETag, and read again afterwards so that concurrent
    attaches to the same image do not drop each other.

    Prints HOST/REPO@DIGEST of the artifact; --json adds the subject, and whether the registry's API or the fallback tag
    holds the link.
  `;
  static override examples = [
    '<%= config.bin %> attach ghcr.io/acme/myos:1.2.0 --artifact-type application/spdx+json --file sbom.spdx.json',
    '<%= config.bin %> attach localhost:5000/myos@sha256:0123… --artifact-type application/vnd.acme.release-notes' +
      ' --file NOTES.md --annotation org.opencontainers.image.description="1.2.0 notes"',
  ];
  static override args = {
    ref: Args.string({ required: true, description: 'The image to attach to: [HOST[:PORT]/]REPO[:TAG][@DIGEST].' }),
  };
  static override flags = {
    'artifact-type': Flags.string({ required: true, description: 'artifactType of the new artifact (a media type).', helpValue: 'TYPE' }),
    file: Flags.string({
      char: 'f',
      multiple: true,
      multipleNonGreedy: true,
      description: prose`A file to attach (repeatable); its name becomes the layer title. None: an annotation-only
        artifact.`,
      helpValue: 'PATH',
    }),
    'file-media-type': Flags.string({ default: 'application/octet-stream', description: 'Media type of the file layers.', helpValue: 'TYPE' }),
    annotation: Flags.string({
      char: 'a',
      multiple: true,
      multipleNonGreedy: true,
      description: 'An annotation KEY=VALUE of the artifact manifest (repeatable).',
      helpValue: 'KEY=VALUE',
    }),
    ...registryFlags,
    ...uploadFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Attach);
    const annotations = parseAnnotationFlags(flags.annotation);
    const client = await registryClientFromFlags(flags, { writes: args.ref }, { onWarning: (m, r) => stderrLine(`oci-os: warning from ${r}: ${m}`) });
    try {
      const r = await attach(client.repository(args.ref), {
        artifactType: flags['artifact-type'],
        files: (flags.file ?? []).map((path) => ({ path, mediaType: flags['file-media-type'] })),
        annotations,
      });
      if (!this.jsonEnabled()) this.log(r.reference);
      return r;
    } finally {
      await client.close();
    }
  }
}
