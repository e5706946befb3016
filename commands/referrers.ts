import { Args, Flags } from '@oclif/core';
import { BaseCommand, stderrLine } from '../cli/base.js';
import { prose } from '../cli/prose.js';
import { registryClientFromFlags, registryFlags } from '../cli/registry-flags.js';
import { listReferrers } from '../src/registry/referrers.js';
import { printable } from '../src/util/printable.js';

export default class Referrers extends BaseCommand {
  static override summary = 'List the artifacts that refer to an image (made by "oci-os attach", oras, cosign…).';
  static override description = prose`
    Asks the registry's referrers API (GET /v2/<name>/referrers/<digest>); when the registry has none (404), reads the
    fallback index at tag sha256-<hex of the subject digest> that clients maintain instead.

    Prints one line per referrer: DIGEST ARTIFACT-TYPE SIZE and its annotations; --json prints {subject, source,
    referrers}.
  `;
  static override examples = [
    '<%= config.bin %> referrers ghcr.io/acme/myos:1.2.0',
    '<%= config.bin %> referrers localhost:5000/myos:dev --artifact-type application/spdx+json --json',
  ];
  static override args = {
    ref: Args.string({ required: true, description: 'The image: [HOST[:PORT]/]REPO[:TAG][@DIGEST].' }),
  };
  static override flags = {
    'artifact-type': Flags.string({ description: 'Only referrers of this artifact type.', helpValue: 'TYPE' }),
    ...registryFlags,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Referrers);
    const client = await registryClientFromFlags(flags, { reads: [args.ref] }, { onWarning: (m, r) => stderrLine(`oci-os: warning from ${r}: ${m}`) });
    try {
      const r = await listReferrers(client.repository(args.ref), { artifactType: flags['artifact-type'] });
      if (!this.jsonEnabled()) {
        for (const d of r.referrers) {
          const notes = Object.entries(d.annotations ?? {})
            .map(([k, v]) => `${printable(k)}=${printable(v)}`)
            .join(' ');
          this.log([printable(d.digest), printable(d.artifactType ?? '-'), String(d.size), notes].filter(Boolean).join('\t'));
        }
        if (r.referrers.length === 0) stderrLine(`oci-os: no referrers of ${r.subject.digest}`);
      }
      return r;
    } finally {
      await client.close();
    }
  }
}
