import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { call, errorCode, pushBlob, tempRegistry } from './helpers.js';

/** Every error code the distribution-spec v1.1 error table lists. */
const specCodes = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
]);

describe('registry server: answers as the distribution-spec conformance suite expects', () => {
  it('answers 404 to a pull of a reference that is no valid tag, 400 to a push of it', async () => {
    const reg = await tempRegistry();
    try {
      await pushBlob(reg, 'conf', '{}');
      for (const ref of ['.INVALID_MANIFEST_NAME', `${'t'.repeat(129)}`]) {
        const get = await call(reg, 'GET', `/v2/conf/manifests/${ref}`);
        assert.equal(get.status, 404, `GET ${ref}: ${get.text}`);
        assert.equal(errorCode(get), 'MANIFEST_UNKNOWN');
        assert.equal((await call(reg, 'HEAD', `/v2/conf/manifests/${ref}`)).status, 404);
        assert.equal((await call(reg, 'DELETE', `/v2/conf/manifests/${ref}`)).status, 404);
        const put = await call(reg, 'PUT', `/v2/conf/manifests/${ref}`, {
          body: '{}',
          headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        });
        assert.equal(put.status, 400);
        assert.equal(errorCode(put), 'MANIFEST_INVALID');
      }
    } finally {
      await reg.stop();
    }
  });

  it('answers every 416 with a code from the spec error table', async () => {
    const reg = await tempRegistry();
    try {
      const digest = await pushBlob(reg, 'conf', 'abcdef');
      const loc = (await call(reg, 'POST', '/v2/conf/blobs/uploads/')).header('location')!;
      assert.equal((await call(reg, 'PATCH', loc, { body: 'abc', headers: { 'content-range': '0-2' } })).status, 202);
      const answers = [
        await call(reg, 'PATCH', loc, { body: 'xyz', headers: { 'content-range': '10-12' } }),
        await call(reg, 'PATCH', loc, { body: 'xyz', headers: { 'content-range': '5-3' } }),
        await call(reg, 'PUT', `${loc}?digest=${digest}`, { body: 'def', headers: { 'content-range': '4-6' } }),
        await call(reg, 'GET', `/v2/conf/blobs/${digest}`, { headers: { range: 'bytes=100-' } }),
      ];
      for (const a of answers) {
        assert.equal(a.status, 416, a.text);
        assert.ok(specCodes.has(errorCode(a)!), `code ${errorCode(a)}`);
      }
      assert.equal(errorCode(answers[0]!), 'BLOB_UPLOAD_INVALID');
      assert.equal(answers[3]!.header('content-range'), 'bytes */6');
    } finally {
      await reg.stop();
    }
  });
});
