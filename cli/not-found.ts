/**
 * The `command_not_found` hook (package.json oclif.hooks): an unknown command
 * is a usage error (exit code 2) reported like any other error, one
 * `oci-os: error:` line on stderr or `{"error": ...}` on stdout with --json,
 * instead of oclif's own " ›   Error: command bogus not found".
 */
import { type Hook, ux } from '@oclif/core';
import { ExitCode } from '../src/errors.js';
import { errorJson, stderrLine } from './base.js';

const hook: Hook<'command_not_found'> = async ({ argv = [], config, id }) => {
  // The id comes standardized and takes in every word up to the first flag
  // ("image:bogus:x" for "image bogus x"): name the known topic and the first unknown word.
  const words = id.split(':');
  let topic = 0;
  while (topic < words.length - 1 && config.findTopic(words.slice(0, topic + 1).join(':'))) topic++;
  const typed = words.slice(0, topic + 1).join(' ');
  const help = [config.bin, ...words.slice(0, topic), '--help'].join(' ');
  // "oci-os --json" alone: the flag is taken as the command.
  const message = id.startsWith('-') ? `missing command; see ${help}` : `unknown command ${JSON.stringify(typed)}; see ${help}`;
  // As Command.jsonEnabled decides: --json before any "--", or OCI_OS_CONTENT_TYPE=json.
  const args = [id, ...argv];
  const end = args.indexOf('--');
  const json = config.scopedEnvVar('CONTENT_TYPE')?.toLowerCase() === 'json' || args.slice(0, end === -1 ? undefined : end).includes('--json');
  process.exitCode = ExitCode.usage;
  if (json) ux.stdout(ux.colorizeJson(errorJson('USAGE', message, ExitCode.usage), { pretty: true, theme: config.theme?.json }));
  else stderrLine(`oci-os: error: ${message}`);
};

export default hook;
