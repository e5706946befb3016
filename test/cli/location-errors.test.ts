import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLocation } from '../../src/copy/locations.js';
import { isOciError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';

/** The message of the error parseLocation throws for `input`. */
function refusal(input: string): string {
  try {
    parseLocation(input);
  } catch (err) {
    assert.ok(isOciError(err, 'INVALID_REFERENCE'), String(err));
    return err.message;
  }
  assert.fail(`${input} was accepted`);
}

test('a location written as a URL is refused without echoing its password, user name token or signed query', () => {
  const withPassword = refusal('https://ci:S3CRET@registry.example.com/os/image:v1');
  assert.match(withPassword, /^invalid location "https:\/\/ci:\*\*\*@registry\.example\.com\/os\/image:v1": write a registry reference without a scheme/);
  assert.doesNotMatch(withPassword, /S3CRET/);
  // With a scheme a lone user name is often a token.
  assert.doesNotMatch(refusal('https://ghp_TOKEN123@registry.example.com/x'), /TOKEN123/);
  const signed = refusal('https://u:pw@objects.example.com/blob?X-Amz-Signature=abc123&digest=sha256:00');
  assert.doesNotMatch(signed, /pw@|abc123/);
  assert.match(signed, /objects\.example\.com\/blob\?X-Amz-Signature=REDACTED/);
  // Nothing to hide: shown as written.
  assert.match(refusal('docker://registry.example.com/x:1'), /^invalid location "docker:\/\/registry\.example\.com\/x:1"/);
});

test('the CLI error for a URL location carries no password either', async () => {
  const r = await runCli(['inspect', 'https://ci:S3CRET@127.0.0.1:1/os/image:v1']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /invalid location "https:\/\/ci:\*\*\*@127\.0\.0\.1:1\/os\/image:v1"/);
  assert.doesNotMatch(r.stderr, /S3CRET/);
});
