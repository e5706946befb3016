/**
 * `--format TEMPLATE`: `{{path}}` (or `{{.path}}`) replaced by a field of
 * the command's --json summary, e.g. `{{digest}}`, `{{productInfo.version}}`,
 * `{{manifests.0.digest}}`. A platform prints as OS/ARCH[/VARIANT], other
 * objects as JSON. A field that is not there is an error, not an empty
 * string: a script that pins a digest must not pin "".
 */
import { OciError } from '../src/errors.js';
import { formatPlatform } from '../src/image/platform.js';
import type { Platform } from '../src/oci/descriptor.js';

function isPlatform(v: unknown): v is Platform {
  return typeof v === 'object' && v !== null && typeof (v as Platform).os === 'string' && typeof (v as Platform).architecture === 'string';
}

/** Fills `template` from `value`; throws USAGE naming a field that is not there. */
export function renderTemplate(template: string, value: unknown): string {
  return template.replace(/\{\{\s*\.?([A-Za-z0-9_.-]*)\s*\}\}/g, (_, path: string) => {
    let v: unknown = value;
    for (const key of path ? path.split('.') : []) {
      v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
    }
    if (v === undefined || v === null) {
      const keys = typeof value === 'object' && value !== null ? Object.keys(value).join(', ') : '';
      throw new OciError('USAGE', `--format: {{${path}}} is not there (fields: ${keys}; --json shows them all)`);
    }
    if (isPlatform(v)) return formatPlatform(v);
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}
