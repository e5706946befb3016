/**
 * Who left a temporary file. Writers of a layout or an archive name what
 * they put there temporarily with their owner tag, `PID.START`: the process
 * id and, where the system tells it (Linux, /proc), the process's start
 * time in clock ticks since boot. A writer killed outright (kill -9, power
 * cut, out-of-memory killer) cannot remove its temporaries; whoever writes
 * next removes those whose owner is gone. The start time tells a process
 * that is gone from a later one that was given the same id, which would
 * otherwise keep a dead writer's temporaries for as long as it runs.
 * Names without a start time (other systems, older versions) are judged by
 * the process id alone.
 */
import { readFileSync } from 'node:fs';

/** The start time of process `pid` (field 22 of /proc/PID/stat), undefined where it cannot be read. */
function startTime(pid: number): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = fields[22 - 3];
  return start !== undefined && /^\d+$/.test(start) ? start : undefined;
}

let own: string | undefined;

/** This process's owner tag: `PID.START`, or `PID` where the start time is unknown. */
export function ownerTag(): string {
  if (own === undefined) {
    const start = startTime(process.pid);
    own = start === undefined ? String(process.pid) : `${process.pid}.${start}`;
  }
  return own;
}

/** An owner tag as found in a name (`PID` or `PID.START`), or undefined when it is not one. */
export function parseOwnerTag(tag: string): { pid: number; start?: string } | undefined {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(tag);
  if (!m) return undefined;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, start: m[2] };
}

/**
 * Whether the process that wrote `tag` may still be running. Only a
 * process known to be gone (no such pid, or a pid now held by a process
 * that started at another time) counts as gone.
 */
export function ownerAlive(tag: string): boolean {
  const owner = parseOwnerTag(tag);
  if (!owner) return true;
  if (owner.pid === process.pid) return owner.start === undefined || tag === ownerTag();
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: it exists, under another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (owner.start === undefined) return true;
  const now = startTime(owner.pid);
  return now === undefined || now === owner.start;
}
