/**
 * A value read from an image or a registry made safe for one line of a
 * terminal: not a string (manifests are not checked to hold strings where
 * they should) → its JSON; control characters (escape sequences, tabs that
 * would shift the columns, newlines, DEL and C1) written as JSON escapes,
 * \u00XX where JSON has no short one.
 */
export function printable(v: unknown): string {
  const text = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    const j = JSON.stringify(c).slice(1, -1);
    return j !== c ? j : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}
