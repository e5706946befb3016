import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRange } from '../../src/server/blobs.js';
import { parseRoute } from '../../src/server/routes.js';

const d = `sha256:${'a'.repeat(64)}`;

describe('registry server: route and range parsing', () => {
  it('splits names with several components, including ones named like endpoints', () => {
    assert.deepEqual(parseRoute('/v2/'), { kind: 'base' });
    assert.deepEqual(parseRoute(`/v2/a/b/c/blobs/${d}`), { kind: 'blob', name: 'a/b/c', digest: d });
    assert.deepEqual(parseRoute(`/v2/x/blobs/blobs/${d}`), { kind: 'blob', name: 'x/blobs', digest: d });
    assert.deepEqual(parseRoute('/v2/x/blobs/blobs/uploads/'), { kind: 'uploadStart', name: 'x/blobs' });
    assert.deepEqual(parseRoute('/v2/x/blobs/uploads'), { kind: 'uploadStart', name: 'x' });
    assert.deepEqual(parseRoute('/v2/x/manifests/manifests/latest'), { kind: 'manifest', name: 'x/manifests', reference: 'latest' });
    assert.deepEqual(parseRoute(`/v2/x/manifests/${encodeURIComponent(d)}`), { kind: 'manifest', name: 'x', reference: d });
    assert.deepEqual(parseRoute('/v2/tags/tags/list'), { kind: 'tags', name: 'tags' });
    assert.deepEqual(parseRoute(`/v2/r/referrers/${d}`), { kind: 'referrers', name: 'r', digest: d });
    assert.deepEqual(parseRoute('/v2/a/blobs/uploads/some-id'), { kind: 'upload', name: 'a', id: 'some-id' });
    assert.equal(parseRoute('/v1/a/tags/list'), undefined);
    assert.equal(parseRoute('/v2/a'), undefined);
  });

  it('refuses bad names, tags and digests with the spec codes', () => {
    const code = (path: string): string | undefined => {
      try {
        parseRoute(path);
        return undefined;
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    assert.equal(code('/v2/Bad/tags/list'), 'NAME_INVALID');
    assert.equal(code('/v2/a__-b/tags/list'), 'NAME_INVALID');
    assert.equal(code(`/v2/${'a'.repeat(256)}/tags/list`), 'NAME_INVALID');
    // A reference outside the tag grammar is the endpoint's to answer (404 on a pull, 400 on a push).
    assert.deepEqual(parseRoute('/v2/a/manifests/.hidden'), { kind: 'manifest', name: 'a', reference: '.hidden' });
    assert.equal(code(`/v2/a/manifests/${'t'.repeat(129)}`), undefined);
    assert.equal(code('/v2/a/manifests/sha256:ABC'), 'DIGEST_INVALID');
    assert.equal(code('/v2/a/blobs/sha256:ABC'), 'DIGEST_INVALID');
    assert.equal(code(`/v2/a/blobs/sha512:${'a'.repeat(128)}`), 'DIGEST_INVALID');
    assert.equal(code('/v2/a.b_c__d-e--f/g/tags/list'), undefined);
  });

  it('parses single byte ranges and ignores what it cannot serve as one range', () => {
    assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
    assert.deepEqual(parseRange('bytes=3-', 10), { start: 3, end: 9 });
    assert.deepEqual(parseRange('bytes=-20', 10), { start: 0, end: 9 });
    assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-1,4-5', 10), null);
    assert.equal(parseRange('items=0-1', 10), null);
    assert.equal(parseRange(undefined, 10), null);
  });
});
