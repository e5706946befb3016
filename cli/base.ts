/**
 * The base of every oci-os command: `--json` on every command, one-line
 * errors with stable exit codes (src/errors.ts ExitCode), stack traces only
 * with `--debug` or `DEBUG=oci-os*`. Everything a command prints through it
 * (lines, JSON documents, errors) passes through the one credential
 * sanitizer, redactCredentials / redactValue.
 */
import { Command, Flags, type Interfaces } from '@oclif/core';
import { stripVTControlCharacters } from 'node:util';
import { ExitCode, OciError } from '../src/errors.js';
import { redactCredentials, redactValue } from '../src/registry/redact.js';

interface OclifLikeError {
  message?: string;
  oclif?: { exit?: number };
  exitCode?: number;
  code?: string;
  /** The framework's missing-arguments error: the arguments' definitions. */
  args?: unknown[];
}

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
export function errorJson(code: string, message: string, exitCode: number, hint?: string): { error: { code: string; message: string; hint?: string }; exitCode: number } {
  return { error: { code, message: redactCredentials(message), ...(hint ? { hint: redactCredentials(hint) } : {}) }, exitCode };
}

/** A line for standard error, sanitized like everything else a command prints. */
export function stderrLine(text: string): void {
  process.stderr.write(`${redactCredentials(text)}\n`);
}

const lowerFirst = (s: string): string => (/^[A-Z][a-z]/.test(s) ? s[0]!.toLowerCase() + s.slice(1) : s);

/** One reason of a failed flag check, reworded; pairs of exclusive flags are collected in `exclusive`. */
function flagReason(reason: string, exclusive: string[][]): string | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^Exactly one of the following must be provided: (.*)$/.exec(reason))) return `give exactly one of ${m[1]}`;
  if ((m = /^At least one of the following must be provided: (.*)$/.exec(reason))) return `give at least one of ${m[1]}`;
  if ((m = /^Missing required flag (\S+)$/.exec(reason))) return `missing option --${m[1]}`;
  if ((m = /^All of the following must be provided when using (--\S+): (.*)$/.exec(reason))) return `${m[1]} needs ${m[2]}`;
  if ((m = /^One of the following must be provided when using (--\S+): (.*)$/.exec(reason))) return `${m[1]} needs one of ${m[2]}`;
  if ((m = /^Only the following can be provided when using (--\S+): (.*)$/.exec(reason))) return `${m[1]} goes only with ${m[2]}`;
  // Reported once from each side ("--a cannot also be provided when using --b" and the reverse).
  if ((m = /^(--[\w-]+)(?:=.*)? cannot also be provided when using (--[\w-]+)$/s.exec(reason))) {
    const pair = [m[1]!, m[2]!];
    if (!exclusive.some((p) => p.includes(pair[0]!) && p.includes(pair[1]!))) exclusive.push(pair);
    return undefined;
  }
  return lowerFirst(reason);
}

/**
 * One line for a parse error of the CLI framework, whose messages span
 * several lines and end in "See more help with --help" ("Missing 1 required
 * arg:\nsource  What to inspect.\nSee more help with --help" becomes
 * "missing argument SOURCE (what to inspect); see --help").
 */
export function usageMessage(err: OclifLikeError): string {
  const text = stripVTControlCharacters(err.message ?? String(err));
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && l !== 'See more help with --help');
  let m: RegExpExecArray | null;
  let line: string;
  if (/^Missing \d+ required args?\b/.test(text) && err.args?.every((a) => typeof a === 'object' && a !== null && 'name' in a)) {
    const args = (err.args as Array<{ name: string; description?: string }>).map((a) => {
      const d = a.description?.trim().replace(/\.$/, '');
      return `${a.name.toUpperCase()}${d ? ` (${lowerFirst(d)})` : ''}`;
    });
    line = `missing argument${args.length === 1 ? '' : 's'} ${args.join(', ')}`;
    // Arguments after a flag that takes several values are read as its values.
    if ((m = /Note: (.+?) allows? multiple values/.exec(text))) {
      const several = m[1]!.includes(',');
      line += ` (${m[1]} take${several ? '' : 's'} several values: give arguments before ${several ? 'them' : 'it'} or after "--")`;
    }
  } else if (/^The following errors? occurred:/.test(lines[0] ?? '')) {
    const exclusive: string[][] = [];
    const reasons = lines.slice(1).map((r) => flagReason(r, exclusive)).filter((r): r is string => r !== undefined);
    line = [...new Set([...exclusive.map((p) => `give only one of ${p.join(', ')}`), ...reasons])].join('; ');
  } else if ((m = /^Nonexistent flags?: (.*)$/.exec(lines[0] ?? ''))) {
    line = `unknown option${m[1]!.includes(',') ? 's' : ''} ${m[1]}`;
  } else if ((m = /^Expected (--[\w-]+)=(.*) to be one of: (.*)$/s.exec(lines.join(' ')))) {
    line = `invalid ${m[1]} ${JSON.stringify(m[2])}: use one of ${m[3]}`;
  } else if ((m = /^Parsing (--[\w-]+)$/.exec(lines[0] ?? ''))) {
    // "Parsing --jobs" then what is wrong with its value (which may name the flag itself).
    const detail = lines.slice(1).map(lowerFirst).join('; ');
    line = detail.includes(m[1]!) ? detail : `${m[1]}: ${detail}`;
  } else {
    line = lowerFirst(lines.join('; '));
  }
  return `${line}; see --help`;
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

  protected override async catch(err: Error & OclifLikeError): Promise<void> {
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
