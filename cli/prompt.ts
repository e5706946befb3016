/** Reading a secret from standard input or from the terminal, without echo. */
import { OciError } from '../src/errors.js';

/** All of standard input, without one trailing newline (what `echo "$TOKEN" |` adds). */
export async function readStdinSecret(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** True when prompts can be shown and answered. */
export function canPrompt(): boolean {
  return process.stdin.isTTY === true;
}

/** Asks a question on stderr and reads one line from the terminal (echoed). */
export async function promptLine(question: string): Promise<string> {
  // Loaded here: every registry command imports this file, few of them prompt.
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
  }
}

/** Asks on stderr and reads one line from the terminal in raw mode, echoing nothing. Ctrl-C aborts. */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  // Echo goes off before the question appears, so nothing typed after it is echoed.
  stdin.setRawMode(true);
  process.stderr.write(question);
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const finish = (err?: Error): void => {
      stdin.removeListener('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          finish();
          return;
        }
        if (ch === '\u0003') {
          finish(new OciError('ABORTED', 'login cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.resume();
    stdin.on('data', onData);
  });
}
