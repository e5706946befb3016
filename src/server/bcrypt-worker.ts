/**
 * Worker side of BcryptPool: compares one password with one bcrypt hash per
 * message, so that the cost of bcrypt is paid off the thread serving requests.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

// On Linux a nice value belongs to a thread, so this lowers only this thread:
// when the CPU is short, serving requests goes before checking passwords.
// Elsewhere it would lower the whole process, so it is left alone.
if (process.platform === 'linux') {
  try {
    setPriority(10);
  } catch {
    // Not allowed here: the checks run at normal priority.
  }
}

interface Job {
  password: string;
  hash: string;
}

parentPort!.on('message', ({ password, hash }: Job) => {
  try {
    parentPort!.postMessage({ ok: bcrypt.compareSync(password, hash) });
  } catch (err) {
    parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
});
