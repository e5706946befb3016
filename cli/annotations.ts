/** `--annotation KEY=VALUE` parsing, shared by build, push and attach. */
import { OciError } from '../src/errors.js';
import { jsonMap } from '../src/oci/json.js';

/**
 * Parses repeated `KEY=VALUE` flags (the value may be empty or hold `=`);
 * later keys win. The result is a {@link jsonMap}: any key is kept (even
 * `__proto__`), and the order the flags were given in never changes the
 * document, so neither does its digest.
 */
export function parseAnnotationFlags(values: readonly string[] | undefined, flag = '--annotation'): Record<string, string> {
  return jsonMap(
    (values ?? []).map((v): [string, string] => {
      const eq = v.indexOf('=');
      if (eq <= 0) throw new OciError('USAGE', `invalid ${flag} "${v}": write KEY=VALUE, e.g. ${flag} org.opencontainers.image.description=nightly`);
      return [v.slice(0, eq), v.slice(eq + 1)];
    }),
  );
}
