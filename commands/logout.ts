import { Args } from '@oclif/core';
import { BaseCommand, stderrLine } from '../cli/base.js';
import { prose } from '../cli/prose.js';
import { logout, parseLoginTarget } from '../src/registry/auth/login.js';

export default class Logout extends BaseCommand {
  static override summary = 'Remove the stored credentials of a registry.';
  static override description = prose`
    Removes the registry's entry (every spelling of its key) from the auth file a login writes — REGISTRY_AUTH_FILE,
    else $DOCKER_CONFIG/config.json, else ~/.docker/config.json — and erases the secret from the credential helper that
    file names for it. Other entries are kept. Not being logged in is not an error.

    If another auth file that oci-os reads still holds credentials for the registry, it is named on stderr.
  `;
  static override examples = ['<%= config.bin %> logout ghcr.io', 'REGISTRY_AUTH_FILE=auth.json <%= config.bin %> logout localhost:5000 --json'];
  static override args = {
    registry: Args.string({ required: false, description: 'Registry HOST[:PORT] (default: docker.io).' }),
  };

  async run(): Promise<unknown> {
    const { args } = await this.parse(Logout);
    const target = parseLoginTarget(args.registry);
    const r = await logout(target, { onWarning: (m) => stderrLine(`oci-os: warning: ${m}`) });
    if (!this.jsonEnabled()) {
      const from = r.helper ? `credential helper ${r.helper}` : r.file;
      this.log(r.removed ? `Removed the credentials for ${r.registry} from ${from}` : `Not logged in to ${r.registry} in ${r.file}`);
      for (const f of r.stillIn) process.stderr.write(`oci-os: note: ${f} still holds credentials for ${r.registry}\n`);
    }
    return r;
  }
}
