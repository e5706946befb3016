/**
 * Hands a command line to oclif (bin/run.cjs calls this, from the start-up
 * bundle), loading no more of the CLI than the command line needs:
 * - one of our commands (`inspect …`, `image build …`): oclif is shown that
 *   command alone, from its own manifest (dist/launch/NAME, written with
 *   oclif.manifest.json). Reading all commands' manifest and sorting them (the
 *   first sort starts ICU's collator) took about 14 ms of every start;
 * - a topic of ours (`image --help`, `image bogus`): all our commands, without
 *   oclif's plugins. The one plugin, autocomplete, adds a command of its own
 *   and no hook that runs for ours, and finding and reading it took about 8 ms;
 * - anything else (`--help`, `help`, `autocomplete`, an unknown word): all of it.
 */
import { join, relative } from 'node:path';
import { execute, type Interfaces } from '@oclif/core';

/** The folder with a command's own manifest, under dist/launch: `image-build` for `image:build`. */
export const launchFolder = (id: string): string => id.replaceAll(':', '-');

/** Runs `argv` (the words after the program's name) as oclif would, from the package at `root`. */
export function launch(root: string, pjson: Interfaces.PJSON, commandIds: readonly string[], argv: string[]): Promise<unknown> {
  const id = commandOf(argv, commandIds);
  if (id !== undefined) {
    const alone = join(root, 'dist', 'launch', launchFolder(id));
    return execute({ args: argv, loadOptions: { root: alone, pjson: withoutPlugins(rebased(pjson, root, alone)) } });
  }
  if (commandIds.some((c) => c.split(':')[0] === argv[0])) return execute({ args: argv, loadOptions: { root, pjson: withoutPlugins(pjson) } });
  return execute({ args: argv, dir: root });
}

/** The command the leading words of `argv` name (`image build` or `image:build`), as oclif reads them; the longest wins. */
function commandOf(argv: string[], commandIds: readonly string[]): string | undefined {
  const words = argv[0]?.includes(':') ? argv[0].split(':') : argv;
  let found: string | undefined;
  for (let n = 1; n <= words.length && !words[n - 1]!.startsWith('-'); n++) {
    const id = words.slice(0, n).join(':');
    if (commandIds.includes(id)) found = id;
  }
  return found;
}

/** `pjson` without the plugins it names (package.json oclif.plugins); plugins a user installed still load, as oclif loads them. */
function withoutPlugins(pjson: Interfaces.PJSON): Interfaces.PJSON {
  return { ...pjson, oclif: { ...pjson.oclif, plugins: [] } };
}

/** `pjson` with the files its oclif section names (the commands' and hooks' targets) relative to `to` instead of `from`. */
function rebased(pjson: Interfaces.PJSON, from: string, to: string): Interfaces.PJSON {
  const move = (target: string) => relative(to, join(from, target));
  const commands = pjson.oclif.commands;
  const hooks = Object.fromEntries(
    Object.entries(pjson.oclif.hooks ?? {}).map(([event, hook]) => [
      event,
      [hook].flat().map((h) => (typeof h === 'string' ? move(h) : { ...h, target: move(h.target) })),
    ]),
  );
  return {
    ...pjson,
    oclif: {
      ...pjson.oclif,
      hooks,
      commands: typeof commands === 'object' && 'target' in commands ? { ...commands, target: move(commands.target) } : commands,
    },
  };
}
