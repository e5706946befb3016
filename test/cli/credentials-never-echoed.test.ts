import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { OciError } from '../../src/errors.js';
import { parseErrorBody, RegistryError } from '../../src/registry/errors.js';
import { redactCredentials, redactValue } from '../../src/secrets/redact.js';
import { type CliResult, runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';

const secrets = ['s3cretPW', 'S3cretTok', 'w0rdPart', 'pAss5'];

function assertNoSecret(r: CliResult, what: string): void {
  for (const s of secrets) {
    assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `${what} printed a secret (${s}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

test('the sanitizer hides user-info of any reference-like text and leaves references and prose alone', () => {
  const hidden: Array<[string, string]> = [
    ['invalid reference "alice:s3cretPW@127.0.0.1:5000/os/img@latest": bad', 'invalid reference "alice:***@127.0.0.1:5000/os/img@latest": bad'],
    ['S3cretTok@ghcr.io/o/img:1', '***@ghcr.io/o/img:1'],
    ['alice:s3cretPW@Bad_Host/os/img', 'alice:***@Bad_Host/os/img'],
    ['alice:p@ss/w0rdPart@registry.example.com/os/img:1', 'alice:***@registry.example.com/os/img:1'],
    ['(bob:pAss5@[::1]:5000/x)', '(bob:***@[::1]:5000/x)'],
    ['see https://u:pa/ss5@host.example/x', 'see https://u:***@host.example/x'],
    ['https://S3cretTok@ghcr.io', 'https://***@ghcr.io'],
  ];
  for (const [input, want] of hidden) assert.equal(redactCredentials(input), want, input);
  const kept = [
    '127.0.0.1:5000/os/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    'alpine:3.20@sha256:abc',
    'ghcr.io/o/r@nodigest',
    'localhost:5000/os/img:1@latest',
    'ubuntu@latest',
    'Maintainer <jane@example.com>',
    'expected [HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST], e.g. ghcr.io/org/image:1.0',
  ];
  for (const text of kept) assert.equal(redactCredentials(text), text);
  // Values a registry or token server echoes.
  const echoed = redactCredentials(
    'x refresh_token=S3cretTok&scope=a {"access_token":"S3cretTok"} {\\"password\\":\\"pAss5\\"} Authorization: Token S3cretTok',
  );
  assert.doesNotMatch(echoed, /S3cretTok|pAss5/);
  assert.match(echoed, /scope=a/);
  assert.deepEqual(redactValue({ a: [{ Authorization: 'x', token: 'y', auth: 'z', n: 1, ref: 'u:pAss5@h.io/r' }] }), {
    a: [{ Authorization: 'REDACTED', token: 'REDACTED', auth: 'REDACTED', n: 1, ref: 'u:***@h.io/r' }],
  });
  // Library errors are made clean: whoever prints them prints no secret.
  assert.doesNotMatch(new OciError('INTERNAL', 'failed for alice:s3cretPW@h.example/x', { hint: 'token=S3cretTok' }).message, /s3cretPW/);
  assert.doesNotMatch(new OciError('INTERNAL', 'x', { hint: 'token=S3cretTok' }).hint!, /S3cretTok/);
  const e = new RegistryError({
    status: 400,
    method: 'GET',
    url: 'https://r/v2/',
    body: parseErrorBody('{"errors":[{"code":"DENIED","message":"bad password=pAss5","detail":{"token":"S3cretTok","nested":{"refresh_token":"S3cretTok"}}}]}'),
  });
  assert.doesNotMatch(`${e.message} ${JSON.stringify(e.errors)} ${e.allText}`, /S3cretTok|pAss5/);
  assert.ok(e.hasCode('DENIED'));
});

test('no command echoes a password or token typed into an invalid reference, in plain or --json output', async (t) => {
  const root = await tempDir(t);
  const env = { HOME: root, DOCKER_CONFIG: join(root, 'docker'), REGISTRY_AUTH_FILE: '', OCI_OS_USERNAME: '', OCI_OS_PASSWORD: '' };
  const host = '127.0.0.1:9';
  const refs = [
    `alice:s3cretPW@${host}/os/img@latest`, // valid host, then an "@" that is no digest
    `S3cretTok@${host}/os/img@latest`, // a lone token
    'alice:s3cretPW@Bad_Host/os/img', // nothing after the "@" is valid
    `alice:p@ss/w0rdPart@${host}/os/img:1`, // "@" and "/" in the password
  ];
  const commands = (ref: string): string[][] => [
    ['inspect', ref],
    ['pull', ref, '-o', `oci:${join(root, 'out')}:x`],
    ['push', ref, '-p', `system=${join(root, 'none.img')}`, '--product-id', 'x', '--product-version', '1'],
    ['copy', ref, `oci:${join(root, 'copy')}:x`],
    ['copy', `oci:${join(root, 'none')}:x`, ref],
    ['attach', ref, '--artifact-type', 'application/vnd.test'],
    ['referrers', ref],
    ['verify', ref],
    ['extract', ref, '-p', 'system', '-o', join(root, 'x')],
    ['image', 'unpack', ref, join(root, 'unpacked')],
    ['login', ref, '-u', 'alice', '--password-stdin'],
    ['logout', ref],
  ];
  const runs: Array<{ args: string[] }> = [];
  // Every command, plain and --json, with the first two shapes in turn; the other shapes with the commands that parse differently (a location, a login target).
  for (const c of commands(refs[0]!).keys()) {
    runs.push({ args: commands(refs[c % 2]!)[c]! }, { args: [...commands(refs[(c + 1) % 2]!)[c]!, '--json'] });
  }
  for (const ref of refs.slice(2)) {
    for (const args of commands(ref).filter((a) => ['inspect', 'copy', 'login'].includes(a[0]!))) runs.push({ args }, { args: [...args, '--json'] });
  }
  // A few at a time: each is its own process.
  for (let i = 0; i < runs.length; i += 4) {
    await Promise.all(
      runs.slice(i, i + 4).map(async ({ args }) => {
        const r = await runCli(args, { env, input: 'pw\n' });
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
        assertNoSecret(r, args.join(' '));
        if (args.includes('--json')) {
          const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
          assert.match(doc.error.code, /^(INVALID_REFERENCE|USAGE)$/);
          assert.match(doc.error.message, /\*\*\*@/, `${args.join(' ')} says where the credentials were`);
        } else {
          assert.match(r.stderr, /^oci-os: error: .*\*\*\*@/, args.join(' '));
        }
      }),
    );
  }
});

test('what a registry echoes (tokens and passwords in error details, Warning headers) is not printed', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const root = await tempDir(t);
  const env = { HOME: root, DOCKER_CONFIG: join(root, 'docker'), REGISTRY_AUTH_FILE: '' };
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url, { otherListener: false });
  t.after(() => proxy.stop());
  const body = {
    errors: [
      {
        code: 'DENIED',
        message: 'request refused: refresh_token=S3cretTok is not valid for alice:s3cretPW@registry.example.com/os/img',
        detail: { Authorization: 'Token S3cretTok', access_token: 'S3cretTok', request: { headers: { authorization: 'Basic w0rdPart' } }, auth: 'pAss5' },
      },
    ],
  };
  proxy.addRule(
    {
      method: 'HEAD',
      path: /\/manifests\//,
      times: Infinity,
      action: { type: 'respond', status: 400, headers: { warning: '299 - "your access_token=S3cretTok expires soon"' } },
    },
    { method: 'GET', path: /\/manifests\//, times: Infinity, action: { type: 'respond', status: 400, body } },
  );
  const ref = `${proxy.host}/os/img:1`;
  for (const args of [
    ['inspect', ref],
    ['pull', ref, '-o', `oci:${join(root, 'out')}:x`],
    ['referrers', ref],
    ['attach', ref, '--artifact-type', 'application/vnd.test'],
    ['verify', ref],
  ]) {
    for (const json of [false, true]) {
      const all = json ? [...args, '--json'] : args;
      const r = await runCli([...all, '--retries', '0'], { env });
      assert.equal(r.code, 1, `${all.join(' ')}: ${r.stderr}${r.stdout}`);
      assert.match(json ? r.stdout : r.stderr, /DENIED/, `${all.join(' ')} still says what the registry said`);
      assertNoSecret(r, all.join(' '));
    }
  }
  // A plain-text body (a token server's or proxy's) is cleaned too.
  proxy.clearRules();
  proxy.addRule({
    path: /\/manifests\//,
    times: Infinity,
    action: { type: 'respond', status: 502, body: 'upstream said: access_token=S3cretTok password=pAss5 Authorization: Bearer w0rdPart' },
  });
  const r = await runCli(['inspect', ref, '--retries', '0', '--json'], { env });
  assert.notEqual(r.code, 0);
  assertNoSecret(r, 'inspect of a plain-text error');
});
