import { Args, Flags } from '@oclif/core';
import { BaseCommand, stderrLine } from '../cli/base.js';
import { canPrompt, promptHidden, promptLine, readStdinSecret } from '../cli/prompt.js';
import { prose } from '../cli/prose.js';
import { registryFlags, timeoutOptions } from '../cli/registry-flags.js';
import { OciError } from '../src/errors.js';
import { login, parseLoginTarget } from '../src/registry/auth/login.js';

export default class Login extends BaseCommand {
  static override summary = 'Check credentials with a registry and store them for oci-os, docker, podman and skopeo.';
  static override description = prose`
    The registry is asked first (GET /v2/ with its own auth flow: Basic, or a token from its token server); credentials
    it refuses are not stored and the command exits with 3.

    Accepted credentials go where docker, podman and skopeo look: the file named by REGISTRY_AUTH_FILE, else
    $DOCKER_CONFIG/config.json, else ~/.docker/config.json (mode 0600, replaced atomically, other entries kept), under
    the key docker uses (https://index.docker.io/v1/ for Docker Hub, HOST[:PORT] otherwise). When that file names a
    credential helper for the registry (credHelpers) or for everything (credsStore), the secret goes to
    docker-credential-NAME instead.

    The password is read from standard input with --password-stdin, or asked for on the terminal without echo; it is
    never taken from the command line. REGISTRY defaults to Docker Hub.
  `;
  static override examples = [
    'echo "$GITHUB_TOKEN" | <%= config.bin %> login ghcr.io -u "$GITHUB_ACTOR" --password-stdin',
    '<%= config.bin %> login localhost:5000 -u admin',
    'REGISTRY_AUTH_FILE=auth.json <%= config.bin %> login registry.example.com -u ci --password-stdin < token.txt',
  ];
  static override args = {
    registry: Args.string({ required: false, description: 'Registry HOST[:PORT] (default: docker.io).' }),
  };
  static override flags = {
    username: Flags.string({ char: 'u', description: 'User name (asked for on the terminal when not given). Default: $OCI_OS_USERNAME.' }),
    'password-stdin': Flags.boolean({ description: 'Read the password or token from standard input.' }),
    'ca-file': registryFlags['ca-file'],
    insecure: registryFlags.insecure,
    'plain-http': registryFlags['plain-http'],
    retries: registryFlags.retries,
    timeout: registryFlags.timeout,
  };

  async run(): Promise<unknown> {
    const { args, flags } = await this.parse(Login);
    const target = parseLoginTarget(args.registry);
    let username = flags.username ?? process.env.OCI_OS_USERNAME;
    let password: string;
    if (flags['password-stdin']) {
      if (!username) throw new OciError('USAGE', '--password-stdin needs --username (or OCI_OS_USERNAME)');
      password = await readStdinSecret();
      if (!password) throw new OciError('USAGE', '--password-stdin given but standard input was empty');
    } else {
      if (!canPrompt()) {
        throw new OciError('USAGE', 'no terminal to ask for the password on', {
          hint: 'pipe it in with --password-stdin (passwords are never taken from the command line)',
        });
      }
      if (!username) username = (await promptLine('Username: ')).trim();
      if (!username) throw new OciError('USAGE', 'no user name given');
      password = await promptHidden('Password: ');
      if (!password) throw new OciError('USAGE', 'no password given');
    }
    const r = await login(
      target,
      { username, password },
      {
        caFile: flags['ca-file'],
        insecure: flags.insecure || undefined,
        plainHttp: flags['plain-http'],
        retry: { retries: flags.retries },
        ...timeoutOptions(flags.timeout),
        onWarning: (m) => stderrLine(`oci-os: warning: ${m}`),
      },
    );
    if (!this.jsonEnabled()) {
      const where = r.helper ? `credential helper ${r.helper}` : r.file;
      const unchecked = r.verified ? '' : '; the registry did not ask for credentials, so they were not checked';
      this.log(`Login succeeded: ${r.registry} as ${username} (stored in ${where})${unchecked}`);
    }
    return { registry: r.registry, username, key: r.key, file: r.file, ...(r.helper ? { helper: r.helper } : {}), verified: r.verified };
  }
}
