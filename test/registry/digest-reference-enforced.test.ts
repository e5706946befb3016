import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { blobPath, buildImage, KiB } from '../cli/image-helpers.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';

/**
 * A registry (here: a proxy in front of a real one) that answers a request
 * for manifest A with manifest B must be refused by every command that takes
 * a reference with a digest: `attach REF@A` must never sign B.
 */
test("a digest in a reference is held to the registry's answer in every command", async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const root = await tempDir(t);
  const env = { HOME: root, DOCKER_CONFIG: join(root, 'docker'), REGISTRY_AUTH_FILE: '' };
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const a = await buildImage(await tempDir(t), { size: 20 * KiB, seed: 1 });
  const b = await buildImage(await tempDir(t), { size: 20 * KiB, seed: 2 });
  for (const [img, tag] of [
    [a, '1'],
    [b, '2'],
  ] as const) {
    const r = await runCli(['copy', img.location, `${reg.host}/os/img:${tag}`], { env });
    assert.equal(r.code, 0, r.stderr);
  }
  assert.notEqual(a.digest, b.digest);
  const proxy = await startFaultProxy(reg.url, { otherListener: false });
  t.after(() => proxy.stop());
  const refA = `${proxy.host}/os/img@${a.digest}`;
  const manifestOfA = new RegExp(`^/v2/os/img/manifests/${a.digest}$`);

  // Honest registry first: the commands work, so what follows tests the lie, not the setup.
  const honest = await runCli(['inspect', refA, '--json'], { env });
  assert.equal(honest.code, 0, honest.stderr);

  const refuses = async (args: string[], why: string): Promise<void> => {
    const r = await runCli(args, { env });
    assert.equal(r.code, 5, `${why}: ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${a.digest}.*${b.digest}|${b.digest}.*${a.digest}`), `${why}: ${args[0]} names both digests`);
  };
  const commands = (): string[][] => [
    ['attach', refA, '--artifact-type', 'application/vnd.test.sig', '--annotation', 'k=v'],
    ['referrers', refA],
    ['inspect', refA],
    ['pull', refA, '-o', `oci:${join(root, `pulled-${proxy.log.length}`)}:x`],
    ['copy', refA, `${reg.host}/os/copied:${proxy.log.length}`],
    ['verify', refA],
    ['extract', refA, '-p', 'system', '-o', join(root, `system-${proxy.log.length}`)],
    ['image', 'unpack', refA, join(root, `unpacked-${proxy.log.length}`)],
  ];

  // 1. HEAD answers Docker-Content-Digest B for A. attach and referrers resolve A with a HEAD and
  // refuse; the commands that read A fetch it as they resolve it (no HEAD), and never see B (image
  // unpack then says an OS image is not a container image, as it does for A).
  proxy.addRule({ method: 'HEAD', path: manifestOfA, times: Infinity, action: { type: 'rewrite', setHeaders: { 'docker-content-digest': b.digest } } });
  const [attach, referrers, ...readers] = commands();
  for (const args of [attach!, referrers!]) await refuses(args, 'HEAD answers B');
  for (const args of readers) {
    const before = proxy.log.length;
    const r = await runCli(args, { env });
    assert.ok(r.code !== 5 && !`${r.stdout}${r.stderr}`.includes(b.digest), `${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    if (args[0] !== 'image') assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(!proxy.log.slice(before).some((e) => e.method === 'HEAD' && manifestOfA.test(e.path)), `${args[0]} asked no HEAD of A`);
  }

  // 2. HEAD says nothing useful, and GET sends B's bytes (with B's digest) for A.
  proxy.clearRules();
  const bBytes = await readFile(blobPath(b.dir, b.digest));
  proxy.addRule(
    { method: 'HEAD', path: manifestOfA, times: Infinity, action: { type: 'rewrite', removeHeaders: ['docker-content-digest'] } },
    {
      method: 'GET',
      path: manifestOfA,
      times: Infinity,
      action: {
        type: 'respond',
        status: 200,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': b.digest },
        body: bBytes,
      },
    },
  );
  for (const args of commands()) await refuses(args, 'GET sends B');

  // 3. The same, without the header: only the content tells.
  proxy.clearRules();
  proxy.addRule(
    { method: 'HEAD', path: manifestOfA, times: Infinity, action: { type: 'rewrite', removeHeaders: ['docker-content-digest'] } },
    {
      method: 'GET',
      path: manifestOfA,
      times: Infinity,
      action: { type: 'respond', status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: bBytes },
    },
  );
  for (const args of commands()) await refuses(args, "GET sends B's bytes");

  // Nothing was attached to B, through the API or the fallback tag.
  const fallback = await request(`${reg.url}/v2/os/img/manifests/sha256-${b.digest.slice('sha256:'.length)}`, { method: 'HEAD' });
  await fallback.body.dump();
  assert.equal(fallback.statusCode, 404, 'no referrers index was written for B');
  const listed = await runCli(['referrers', `${reg.host}/os/img@${b.digest}`, '--json'], { env });
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout).referrers, []);
});
