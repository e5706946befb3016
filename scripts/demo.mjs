// The main job in one command: build an OS image from the fixture payloads and
// push it in one pass. With a reference (`npm run demo -- HOST/REPO:TAG`) it
// pushes there; without one it starts the built-in registry on a free port,
// pushes into it, and reads the result back. A local layout copy is written
// to out/demo either way.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'bin', 'run.cjs');
const payloads = ['-p', `system=${join(root, 'fixtures/payloads/system.img')}`, '-p', `kernel.efi=${join(root, 'fixtures/payloads/kernel.efi')}`];
const product = ['--product-info', join(root, 'fixtures/product-info.json')];

function run(args, { capture = false } = {}) {
  console.log(`$ oci-os ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['inherit', capture ? 'pipe' : 'inherit', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`oci-os ${args[0]} exited with ${code}`))));
  });
}

mkdirSync(join(root, 'out'), { recursive: true });
let server;
try {
  await run(['build', ...payloads, ...product, '--output', `oci:${join(root, 'out/demo')}:latest`]);
  let ref = process.argv[2];
  if (!ref) {
    server = spawn(process.execPath, [cli, 'registry', 'serve', '--root', join(root, 'out/registry'), '--listen', '127.0.0.1:0', '--json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const address = await new Promise((resolve, reject) => {
      let buf = '';
      server.stdout.on('data', (d) => {
        buf += d;
        const line = buf.split('\n')[0];
        if (buf.includes('\n')) resolve(JSON.parse(line).address);
      });
      server.on('close', (code) => reject(new Error(`registry exited with ${code}`)));
    });
    console.log(`built-in registry on ${address} (no registry given)`);
    ref = `${address}/demo/fixture-os:latest`;
  }
  await run(['push', ref, ...payloads, ...product]);
  await run(['inspect', ref]);
  await run(['verify', ref]);
} finally {
  server?.kill('SIGTERM');
}
