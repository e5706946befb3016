// Writes oclif.manifest.json from the compiled commands. With it, the CLI
// loads only the command it runs instead of importing every command module
// at start-up (about 20 MiB less memory and a faster start). Generated on
// every build; never committed, so it cannot go stale in a checkout.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Plugin } from '@oclif/core';
import { launchFolder } from '../dist/cli/launch.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const file = join(root, 'oclif.manifest.json');
// A Plugin of its own, so an existing (possibly stale) manifest is ignored.
const plugin = new Plugin({ root, isRoot: true, ignoreManifest: true });
await plugin.load();
const manifest = plugin.manifest;
if (Object.keys(manifest.commands).length === 0) throw new Error('no commands found: compile first (tsc)');
// Atomic, so a CLI starting meanwhile reads the old or the new file, never half of one.
writeFileSync(`${file}.${process.pid}.tmp`, JSON.stringify(manifest) + '\n');
renameSync(`${file}.${process.pid}.tmp`, file);

// One manifest per command, in a folder of its own (cli/launch.ts): a
// command line that names a command shows oclif that command alone.
for (const [id, command] of Object.entries(manifest.commands)) {
  const dir = join(root, 'dist', 'launch', launchFolder(id));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'oclif.manifest.json'), JSON.stringify({ ...manifest, commands: { [id]: command } }) + '\n');
}
