/**
 * The base of every oci-os command: `--json` on every command, one-line
 * errors with stable exit codes (src/errors.ts ExitCode), stack traces only
 * with `--debug` or `DEBUG=oci-os*`. Everything a command prints through it
 * (lines, JSON documents, errors) passes through the one credential
 * sanitizer, redactCredentials / redactValue.
 */

import { stripVTControlCharacters } from 'node:util';
import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import { ExitCode, OciError } from '../src/errors.js';
import { redactCredentials, redactValue } from '../src/secrets/redact.js';

/**
 * The values `this.parse` gives for a set of flag definitions, inferred from
 * the definitions so that the two cannot drift apart (without `json`, which
 * every command has).
 */
export type FlagValues<F> = Omit<Interfaces.InferredFlags<F>, 'json'>;

/**
 * The flags given on the command line, told apart by what the parser reports
 * from the ones it filled in from their defaults.
 */
export function givenFlags(parsed: { flags: Record<string, unknown>; metadata: Interfaces.ParserOutput['metadata'] }): Set<string> {
  return new Set(Object.keys(parsed.flags).filter((name) => parsed.flags[name] !== undefined && !parsed.metadata.flags[name]?.setFromDefault));
}

/** What `--json` prints for a failure, the same for every command (and an unknown one). */
export function errorJson(
  code: string,
  message: string,
  exitCode: number,
  hint?: string,
): { error: { code: string; message: string; hint?: string }; exitCode: number } {
  return { error: { code, message: redactCredentials(message), ...(hint ? { hint: redactCredentials(hint) } : {}) }, exitCode };
}

/** A line for standard error, sanitized like everything else a command prints. */
export function stderrLine(text: string): void {
  process.stderr.write(`${redactCredentials(text)}\n`);
}

const lowerFirst = (s: string): string => (/^[A-Z][a-z]/.test(s) ? s[0]!.toLowerCase() + s.slice(1) : s);

/** A flag or argument definition, as far as the messages below read it. */
interface Definition {
  name: string;
  description?: string;
  type?: string;
  multiple?: boolean;
  required?: boolean;
  exclusive?: unknown[];
  exactlyOne?: unknown[];
  atLeastOne?: unknown[];
  dependsOn?: unknown[];
  relationships?: unknown[];
  combinable?: unknown[];
}

/** What the parser's errors carry beside their text (`parse` is set by every one of them). */
interface ParseErrorFields {
  parse?: {
    input?: { flags?: Record<string, Definition> };
    output?: { flags?: Record<string, unknown>; metadata?: Interfaces.ParserOutput['metadata'] };
  };
  /** RequiredArgsError: the missing arguments' definitions; UnexpectedArgsError: the extra arguments. */
  args?: unknown[];
  /** NonExistentFlagsError: the unknown flags as typed. */
  flags?: string[];
}

/**
 * The class of a parse error of the CLI framework. The parser's error classes
 * (RequiredArgsError, FailedFlagValidationError, …) are not exported by
 * @oclif/core: its package exports give only Errors.CLIError, their base, and
 * @oclif/core/parser exports parse() and validate() but not the errors. So
 * they are told apart by class name (the bundle keeps class names).
 */
function parseErrorClass(err: unknown): string | undefined {
  return err instanceof Errors.CLIError ? err.constructor.name : undefined;
}

/** A relation's flag names; null when it holds more than names (a condition), which our commands do not use. */
function names(list: unknown[] | undefined): string[] | null {
  const out = (list ?? []).filter((f): f is string => typeof f === 'string');
  return out.length === (list ?? []).length ? out : null;
}
const dashed = (names: readonly string[]): string => names.map((n) => `--${n}`).join(', ');

/**
 * The failed flag checks of a FailedFlagValidationError, reworded, in the
 * order the framework lists them: pairs of flags that exclude each other
 * first, then what a flag needs, at least one of, exactly one of, required
 * flags. The error keeps no list of the failed checks (only its English text),
 * so they are made again from what it does keep: the definitions
 * (`parse.input`) and the values (`parse.output`), checked as the framework
 * checks them. Undefined for a relation our commands do not use (the
 * framework's own text is shown then).
 */
function flagProblems(parse: ParseErrorFields['parse']): string[] | undefined {
  const defs = parse?.input?.flags;
  const values = parse?.output?.flags;
  if (!defs || !values) return undefined;
  const given = (name: string) => values[name] !== undefined;
  const fromDefault = (name: string) => parse?.output?.metadata?.flags[name]?.setFromDefault === true;
  // [flag, the one whose definition excludes it]: reported once from each side, shown once.
  const pairs: Array<[string, string]> = [];
  const needs: Array<[number, string, string]> = [];
  for (const [name, def] of Object.entries(defs)) {
    const [exclusive, exactlyOne, atLeastOne, dependsOn] = [def.exclusive, def.exactlyOne, def.atLeastOne, def.dependsOn].map(names);
    if (def.relationships || def.combinable || !exclusive || !exactlyOne || !atLeastOne || !dependsOn) return undefined;
    if (given(name)) {
      if (dependsOn.some((f) => !given(f))) needs.push([0, name, `--${name} needs ${dashed(dependsOn)}`]);
      // A value from a default excludes nothing.
      const excluded = fromDefault(name) ? undefined : exclusive.find((f) => given(f) && !fromDefault(f));
      if (excluded !== undefined) pairs.push([excluded, name]);
      const other = exactlyOne.find((f) => f !== name && given(f));
      if (other !== undefined) pairs.push([other, name]);
    } else if (def.required) {
      needs.push([3, name, `missing option --${name}`]);
    } else if (exactlyOne.length > 0) {
      if (!exactlyOne.some(given)) needs.push([2, name, `give exactly one of ${dashed([...new Set(exactlyOne)].sort())}`]);
    } else if (atLeastOne.length > 0 && !atLeastOne.some(given)) {
      needs.push([1, name, `give at least one of ${dashed([...new Set(atLeastOne)].sort())}`]);
    }
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const shown: Array<[string, string]> = [];
  for (const [a, b] of pairs) if (!shown.some((p) => p.includes(a) && p.includes(b))) shown.push([a, b]);
  needs.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return [...new Set([...shown.map((p) => `give only one of ${dashed(p)}`), ...needs.map((n) => n[2])])];
}

/**
 * One line for a parse error of the CLI framework, whose messages span
 * several lines and end in "See more help with --help" ("Missing 1 required
 * arg:\nsource  What to inspect.\nSee more help with --help" becomes
 * "missing argument SOURCE (what to inspect); see --help"). The line is made
 * from the error's fields; only two errors have nothing but their text:
 * an option flag's value that is not one of its options
 * (FlagInvalidOptionError) and a value a flag's parser refused ("Parsing
 * --jobs" and the parser's reason).
 */
export function usageMessage(err: Error & ParseErrorFields): string {
  const text = stripVTControlCharacters(err.message ?? String(err));
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== 'See more help with --help');
  const defs = Object.values(err.parse?.input?.flags ?? {});
  let m: RegExpExecArray | null;
  let line: string | undefined;
  switch (parseErrorClass(err)) {
    case 'RequiredArgsError': {
      const args = (err.args ?? []) as Definition[];
      line = `missing argument${args.length === 1 ? '' : 's'} ${args
        .map((a) => {
          const d = a.description?.trim().replace(/\.$/, '');
          return `${a.name.toUpperCase()}${d ? ` (${lowerFirst(d)})` : ''}`;
        })
        .join(', ')}`;
      // Arguments after a flag that takes several values are read as its values.
      const several = defs.filter((f) => f.type === 'option' && f.multiple).map((f) => f.name);
      if (several.length > 0) {
        const them = several.length > 1;
        line += ` (${dashed(several)} take${them ? '' : 's'} several values: give arguments before ${them ? 'them' : 'it'} or after "--")`;
      }
      break;
    }
    case 'UnexpectedArgsError':
      line = `unexpected argument${err.args?.length === 1 ? '' : 's'}: ${(err.args ?? []).join(', ')}`;
      break;
    case 'NonExistentFlagsError':
      line = `unknown option${err.flags?.length === 1 ? '' : 's'} ${(err.flags ?? []).join(', ')}`;
      break;
    case 'FailedFlagValidationError':
      line = flagProblems(err.parse)?.join('; ') || lines.slice(1).map(lowerFirst).join('; ');
      break;
    case 'FlagInvalidOptionError':
      if ((m = /^Expected (--[\w-]+)=(.*) to be one of: (.*)$/s.exec(lines.join(' ')))) line = `invalid ${m[1]} ${JSON.stringify(m[2])}: use one of ${m[3]}`;
      break;
    default:
      if ((m = /^Parsing (--[\w-]+)$/.exec(lines[0] ?? ''))) {
        // "Parsing --jobs" then what is wrong with its value (which may name the flag itself).
        const detail = lines.slice(1).map(lowerFirst).join('; ');
        line = detail.includes(m[1]!) ? detail : `${m[1]}: ${detail}`;
      }
  }
  return `${line ?? lowerFirst(lines.join('; '))}; see --help`;
}

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;
  static override baseFlags = {
    debug: Flags.boolean({ description: 'Show stack traces and internal details of failures.', helpGroup: 'GLOBAL' }),
  };

  override log(message = '', ...args: unknown[]): void {
    super.log(typeof message === 'string' ? redactCredentials(message) : redactValue(message), ...args.map((a) => redactValue(a)));
  }

  override logToStderr(message = '', ...args: unknown[]): void {
    super.logToStderr(typeof message === 'string' ? redactCredentials(message) : redactValue(message), ...args.map((a) => redactValue(a)));
  }

  override logJson(json: unknown): void {
    super.logJson(redactValue(json));
  }

  override warn(input: string | Error): string | Error {
    return super.warn(typeof input === 'string' ? redactCredentials(input) : new Error(redactCredentials(input.message)));
  }

  // Read from argv, not from the parsed flags: a parse error, reported by catch(), leaves none.
  private debugEnabled(): boolean {
    return this.argv.includes('--debug') || /(^|,)oci-os/.test(process.env.DEBUG ?? '');
  }

  protected override async catch(err: Error & ParseErrorFields & { oclif?: { exit?: number } }): Promise<void> {
    let code: number;
    let message: string;
    let errorCode: string;
    if (err instanceof OciError) {
      code = err.exitCode;
      message = err.hint ? `${err.message}\n  hint: ${err.hint}` : err.message;
      errorCode = err.code;
    } else if (err.oclif?.exit !== undefined) {
      // Parse errors from the CLI framework are usage errors.
      code = err.oclif.exit === 0 ? 0 : ExitCode.usage;
      // One line: the framework's messages span several.
      message = usageMessage(err);
      errorCode = 'USAGE';
      if (code === 0) {
        process.exitCode = 0;
        return;
      }
    } else {
      code = ExitCode.failure;
      message = err.message ?? String(err);
      errorCode = 'INTERNAL';
    }
    process.exitCode = code;
    if (this.jsonEnabled()) {
      this.logJson(err instanceof OciError ? errorJson(errorCode, err.message, code, err.hint) : errorJson(errorCode, message, code));
      return;
    }
    stderrLine(`oci-os: error: ${message}`);
    if (this.debugEnabled() && err.stack) stderrLine(err.stack);
  }
}

/** The --json head of a command that wrote an image or index: its descriptor, and where (`reference` when pushed, else `output`). */
export function writtenSummary(desc: { digest: string; mediaType: string; size: number }, where: string, pushed: boolean): Record<string, unknown> {
  return { digest: desc.digest, mediaType: desc.mediaType, size: desc.size, [pushed ? 'reference' : 'output']: where };
}
