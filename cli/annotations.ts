/** `--annotation KEY=VALUE` parsing, shared by build, push and attach. */
import { OciError } from '../src/errors.js';

/** Parses repeated `KEY=VALUE` flags (the value may be empty or hold `=`); later keys win. */
export function parseAnnotationFlags(values: readonly string[] | undefined, flag = '--annotation'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new OciError('USAGE', `invalid ${flag} "${v}": write KEY=VALUE, e.g. ${flag} org.opencontainers.image.description=nightly`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}
