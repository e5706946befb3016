import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildImageTo } from '../../src/image/publish.js';
import { unpackImage } from '../../src/image/unpack.js';
import { pseudoRandom, tempDir } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { garRules, startFaultProxy } from '../helpers/fault-proxy.js';
import { requireTools } from '../helpers/tools.js';
import { fastClient } from '../registry/helpers.js';
import { snapshot } from './helpers.js';

const MiB = 1 << 20;

test('layers pushed through a faulty connection: a reset PATCH resumes, a registry refusing PATCH gets the layer re-read whole; DiffIDs stay right', async (t) => {
  if (!requireTools(t, 'docker-registry')) return;
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'data'), { recursive: true });
  await writeFile(join(tree, 'data', 'blob.bin'), pseudoRandom(5 * MiB, 9));
  await writeFile(join(tree, 'data', 'small.txt'), 'small\n');
  const reg = await startDockerRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const { client } = fastClient({ chunkSize: MiB });
  t.after(() => client.close());
  const options = { layers: [tree], compression: 'none' as const, normalize: { sourceDateEpoch: 1_500_000_000 } };

  const local = await buildImageTo(`oci:${join(dir, 'local')}:v1`, options, { client });

  proxy.addRule({ method: 'PATCH', nth: 2, action: { type: 'reset', afterBytes: 300_000 } });
  const resumed = await buildImageTo(`${proxy.host}/faults/reset:v1`, options, { client });
  assert.ok(
    proxy.log.some((e) => e.method === 'PATCH' && e.status === 0),
    'a PATCH was cut',
  );
  assert.ok(
    proxy.log.some((e) => e.method === 'GET' && /\/blobs\/uploads\//.test(e.path)),
    'the upload asked where to resume',
  );
  assert.equal(resumed.descriptor.digest, local.descriptor.digest, 'same image as the local build');

  proxy.clearRules();
  proxy.clearLog();
  proxy.addRule(...garRules());
  const whole = await buildImageTo(`${proxy.host}/faults/gar:v1`, options, { client });
  assert.ok(
    proxy.log.some((e) => e.method === 'PATCH' && e.status === 405),
    'PATCH was refused',
  );
  assert.ok(
    proxy.log.some((e) => e.method === 'PUT' && e.requestBodyBytes >= 5 * MiB),
    'the layer went up whole in one PUT',
  );
  assert.equal(whole.layers[0]!.diffID, local.layers[0]!.diffID);
  assert.equal(whole.descriptor.digest, local.descriptor.digest);

  proxy.clearRules();
  for (const ref of ['faults/reset:v1', 'faults/gar:v1']) {
    const out = join(dir, ref.replace(/[/:]/g, '-'));
    await unpackImage(`${reg.host}/${ref}`, out, { client });
    assert.deepEqual(await snapshot(out), await snapshot(tree), ref);
  }
});
