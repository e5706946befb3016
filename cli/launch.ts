/**
 * Hands a command line to oclif (bin/run.cjs calls this, from the start-up
 * bundle). A command line that starts with one of our commands or topics is
 * run without loading oclif's plugins: the one plugin (autocomplete, package.json
 * oclif.plugins) adds a command of its own and no hook that runs for ours, and
 * finding and reading it cost about 8 ms of every start. `oci-os --help`,
 * `autocomplete`, `help` and anything unknown load everything, as oclif does.
 */
import { execute, type Interfaces } from '@oclif/core';

/** Runs `argv` (the words after the program's name) as oclif would, from the package at `root`. */
export function launch(root: string, pjson: Interfaces.PJSON, commandIds: readonly string[], argv: string[]): Promise<unknown> {
  const ours = new Set(commandIds.map((id) => id.split(':')[0]));
  if (!ours.has(argv[0] ?? '')) return execute({ args: argv, dir: root });
  const alone: Interfaces.PJSON = { ...pjson, oclif: { ...pjson.oclif, plugins: [] } };
  return execute({ args: argv, loadOptions: { root, pjson: alone, userPlugins: false, devPlugins: false } });
}
