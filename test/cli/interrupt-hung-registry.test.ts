/**
 * Ctrl-C reaches requests waiting on a registry that accepted the
 * connection and never answers: the command ends in moments, not when the
 * five-minute answer timeout runs out; --timeout makes that timeout shorter.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { cliPath, runCli, tempDir } from '../helpers/cli.js';

/** A TCP server that takes connections and the requests on them, and never says a word. */
async function silentServer(t: TestContext): Promise<{ host: string; requests: () => number }> {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', (d) => {
      requests += (d.toString('latin1').match(/ HTTP\/1\.1\r\n/g) ?? []).length;
    });
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  return { host: `127.0.0.1:${port}`, requests: () => requests };
}

/** Runs the CLI, sends SIGINT once a request is waiting; resolves with the exit code, stderr and seconds after the signal. */
async function interruptWhenWaiting(args: string[], waiting: () => boolean): Promise<{ code: number | null; stderr: string; seconds: number }> {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  for (let i = 0; i < 400 && !waiting(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(waiting(), `a request reached the server: ${stderr}`);
  await new Promise((r) => setTimeout(r, 200));
  const start = Date.now();
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await closed;
  clearTimeout(timer);
  return { code, stderr, seconds: (Date.now() - start) / 1000 };
}

test('Ctrl-C while inspect, pull and push wait on a registry that never answers ends them at once', async (t) => {
  const root = await tempDir(t);
  const file = join(root, 'system.img');
  await writeFile(file, 'x');
  for (const args of [
    (h: string) => ['inspect', `${h}/x/y:1`],
    (h: string) => ['pull', `${h}/x/y:1`, '-o', `oci:${join(root, 'pulled')}:1`],
    (h: string) => ['push', `${h}/x/y:1`, '-p', `system=${file}`, '--no-cache'],
  ]) {
    const server = await silentServer(t);
    const a = args(server.host);
    const r = await interruptWhenWaiting(a, () => server.requests() > 0);
    assert.equal(r.code, 1, `${a[0]}: ${r.stderr}`);
    assert.ok(r.seconds < 5, `${a[0]} ended ${r.seconds}s after Ctrl-C`);
    assert.match(r.stderr, /interrupted/, a[0]);
  }
});

test('--timeout bounds how long a request waits on a registry that never answers, each retry too', async (t) => {
  const server = await silentServer(t);
  const start = Date.now();
  const r = await runCli(['inspect', `${server.host}/x/y:1`, '--timeout', '1', '--retries', '1']);
  const seconds = (Date.now() - start) / 1000;
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, new RegExp(`${server.host.replaceAll('.', '\\.')} did not answer in time`));
  assert.equal(server.requests(), 2, 'the request and its one retry');
  assert.ok(seconds < 10, `ended after ${seconds}s`);
});
