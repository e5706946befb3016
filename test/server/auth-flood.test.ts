import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { Agent, request } from 'undici';
import { sleep, TailBuffer } from '../helpers/net.js';
import { call, errorCode, tempRegistry } from './helpers.js';

/**
 * Sends 40 concurrent GET /v2/ with wrong passwords to argv[1] from address
 * argv[2], as users named after argv[3], prints "sent", then the statuses as JSON.
 */
const floodScript = `
import { Agent, request } from ${JSON.stringify(createRequire(import.meta.url).resolve('undici'))};
const [url, localAddress, prefix] = process.argv.slice(1);
const agent = new Agent({ localAddress, connections: 64 });
const auth = (u, p) => 'Basic ' + Buffer.from(u + ':' + p).toString('base64');
const all = Array.from({ length: 40 }, (_, i) =>
  request(url + '/v2/', { dispatcher: agent, headers: { authorization: auth(prefix + (i % 4), 'guess' + i) } })
    .then(async (r) => { await r.body.dump(); return r.statusCode; }));
process.stdout.write('sent\\n');
process.stdout.write(JSON.stringify(await Promise.all(all)) + '\\n');
await agent.close();
`;

/** Runs one flood from `address` while a logged-in client keeps sending requests; returns its latencies and the flood's statuses. */
async function floodRound(url: string, client: Agent, address: string, prefix: string): Promise<{ latencies: number[]; statuses: number[] }> {
  // The guesses come from another process, as they would: its own work does not slow this one.
  const attacker = spawn(process.execPath, ['--input-type=module', '-e', floodScript, url, address, prefix], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    // And from elsewhere, not from this machine's CPU: the attacker yields to the registry here.
    try {
      setPriority(attacker.pid!, 19);
    } catch {
      // Priority is only a fairness aid for the measurement.
    }
    const out = new TailBuffer();
    attacker.stdout!.on('data', (d: Buffer) => out.push(d));
    let running = true;
    const exited = new Promise<number | null>((resolve) =>
      attacker.once('exit', (code) => {
        running = false;
        resolve(code);
      }),
    );
    while (running && !out.tail().includes('sent')) await sleep(5);
    const latencies: number[] = [];
    for (let i = 0; i < 20 && (running || i < 5); i++) {
      const started = performance.now();
      assert.equal((await getFrom(client, url, basic('alice', 's3cret'))).status, 200);
      latencies.push(performance.now() - started);
      await sleep(20);
    }
    assert.equal(await exited, 0, out.tail());
    const statuses = JSON.parse(
      out
        .tail()
        .split('\n')
        .find((l) => l.startsWith('['))!,
    ) as number[];
    return { latencies, statuses };
  } finally {
    attacker.kill();
  }
}

function basic(user: string, pass: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
}

/** GET /v2/ from a given loopback address; resolves with the status. */
async function getFrom(agent: Agent, url: string, headers: Record<string, string>): Promise<{ status: number; retryAfter?: string }> {
  const r = await request(`${url}/v2/`, { dispatcher: agent, headers });
  await r.body.dump();
  const ra = r.headers['retry-after'];
  return { status: r.statusCode, retryAfter: Array.isArray(ra) ? ra[0] : ra };
}

describe('registry server: password checks under a flood of wrong guesses', () => {
  it('answers a logged-in client quickly while 40 wrong passwords arrive at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oci-os-htpasswd-'));
    const htpasswd = join(dir, 'htpasswd');
    // Cost 10, as htpasswd -B writes by default: tens of milliseconds per check.
    await writeFile(htpasswd, `alice:${bcrypt.hashSync('s3cret', 10)}\nbob:${bcrypt.hashSync('hunter2', 10)}\n`);
    const reg = await tempRegistry({ htpasswdFile: htpasswd });
    const client = new Agent({ connections: 1 });
    try {
      assert.equal((await getFrom(client, reg.url, basic('alice', 's3cret'))).status, 200);
      // A shared machine can stall any process for a moment; a round spoiled by that is measured again.
      const rounds: string[] = [];
      for (let round = 1; round <= 3; round++) {
        const { latencies, statuses } = await floodRound(reg.url, client, `127.0.0.${10 + round}`, `guesser${round}-`);
        assert.equal(statuses.length, 40);
        // Every guess was answered: refused as a wrong password or, past the limit, before any check.
        for (const status of statuses) assert.ok(status === 401 || status === 429, `status ${status}`);
        assert.equal(statuses.filter((st) => st === 401).length, 10, `one address gets 10 checks a minute: ${statuses.join(',')}`);
        const max = Math.max(...latencies);
        rounds.push(`${max.toFixed(0)} ms (${latencies.map((l) => l.toFixed(0)).join(', ')})`);
        if (max < 100) return;
      }
      assert.fail(`logged-in requests took up to ${rounds.join('; ')}`);
    } finally {
      await client.close();
      await reg.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('throttles guesses at one user from another address too, before any check', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oci-os-htpasswd-'));
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, `alice:${bcrypt.hashSync('s3cret', 4)}\nbob:${bcrypt.hashSync('hunter2', 4)}\n`);
    const reg = await tempRegistry({ htpasswdFile: htpasswd });
    const one = new Agent({ localAddress: '127.0.0.1' });
    const two = new Agent({ localAddress: '127.0.0.2' });
    const three = new Agent({ localAddress: '127.0.0.3' });
    try {
      for (let i = 0; i < 10; i++) assert.equal((await getFrom(one, reg.url, basic('alice', `guess${i}`))).status, 401);
      // The address is over its limit, and so is the user name, wherever the guess comes from.
      const sameAddress = await getFrom(one, reg.url, basic('bob', 'guess'));
      assert.equal(sameAddress.status, 429);
      const otherAddress = await getFrom(two, reg.url, basic('alice', 'guess10'));
      assert.equal(otherAddress.status, 429);
      assert.match(otherAddress.retryAfter ?? '', /^\d+$/);
      // Another user from another address is not affected.
      assert.equal((await getFrom(three, reg.url, basic('bob', 'hunter2'))).status, 200);
      const malformed = await call(reg, 'GET', '/v2/', { headers: { authorization: 'Basic !!' } });
      assert.equal(malformed.status, 401);
      assert.equal(errorCode(malformed), 'UNAUTHORIZED');
    } finally {
      await Promise.all([one.close(), two.close(), three.close()]);
      await reg.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
