import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base.js';
import { prose } from '../../cli/prose.js';
import { defaultListenAddress, parseListenAddress, startRegistryServer } from '../../src/server/index.js';

export default class RegistryServe extends BaseCommand {
  static override summary = 'Serve an OCI distribution registry from a directory.';
  static override description = prose`
    Speaks the OCI distribution-spec v1.1 (pull, push with chunked and monolithic uploads, cross-repository mounts,
    tags, referrers), storing blobs and manifests under --root. Plain HTTP: put a TLS proxy in front of it to serve
    beyond the local machine.

    With --htpasswd, every request needs Basic credentials from that file (bcrypt hashes, as written by htpasswd -B).
    Passwords are checked on worker threads; after 10 failed logins within a minute from one address, or for one user
    name, further attempts get 429 with Retry-After until the minute is over, while clients already logged in carry on.

    When the disk fills up, uploads answer 507 and keep the bytes already stored: the client can resume from the offset
    the upload reports once space is freed.

    Prints the URL it listens on (with --json: {"url", "address", "root"}), then serves until SIGINT or SIGTERM.
  `;
  static override examples = [
    '<%= config.bin %> registry serve --root /var/lib/oci-os-registry',
    '<%= config.bin %> registry serve --root ./registry --listen 127.0.0.1:5001 --htpasswd ./htpasswd',
    '<%= config.bin %> registry serve --root ./registry --listen :0 --json',
  ];
  static override flags = {
    root: Flags.string({ required: true, description: 'Directory holding the registry content (created when missing).', helpValue: 'DIR' }),
    listen: Flags.string({ default: defaultListenAddress, description: 'Address to listen on, HOST:PORT (port 0 picks a free one).', helpValue: 'HOST:PORT' }),
    htpasswd: Flags.string({ description: 'htpasswd file with bcrypt hashes; when given, every request needs Basic credentials.', helpValue: 'FILE' }),
  };

  async run(): Promise<unknown> {
    const { flags } = await this.parse(RegistryServe);
    const { host, port } = parseListenAddress(flags.listen);
    const registry = await startRegistryServer({
      root: flags.root,
      host,
      port,
      htpasswdFile: flags.htpasswd,
      onWarning: (m) => process.stderr.write(`oci-os: warning: ${m}\n`),
    });
    const info = { url: registry.url, address: registry.address, root: flags.root };
    if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(info)}\n`);
    else this.log(`listening on ${registry.url}`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.removeListener('SIGINT', stop);
        process.removeListener('SIGTERM', stop);
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await registry.close();
    if (!this.jsonEnabled()) this.log('stopped');
    return undefined;
  }
}
