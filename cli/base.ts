/**
 * The base of every oci-os command: `--json` on every command, one-line
 * errors with stable exit codes (src/errors.ts ExitCode), stack traces only
 * with `--debug` or `DEBUG=oci-os*`.
 */
import { Command, Flags } from '@oclif/core';
import { ExitCode, OciError } from '../src/errors.js';

interface OclifLikeError {
  message?: string;
  oclif?: { exit?: number };
  exitCode?: number;
  code?: string;
}

export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;
  static override baseFlags = {
    debug: Flags.boolean({ description: 'Show stack traces and internal details of failures.', helpGroup: 'GLOBAL' }),
  };

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
      message = (err.message ?? String(err)).split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
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
      this.logJson({ error: { code: errorCode, message: err.message, ...(err instanceof OciError && err.hint ? { hint: err.hint } : {}) }, exitCode: code });
      return;
    }
    process.stderr.write(`oci-os: error: ${message}\n`);
    if (this.debugEnabled() && err.stack) process.stderr.write(`${err.stack}\n`);
  }
}
