/**
 * Canonical serialization used for every JSON document oci-os writes
 * (config, manifest, index): one tab per indentation level, `": "` after
 * keys, keys in insertion order, a trailing newline, and strings escaped as
 * Go's encoding/json escapes them (`<`, `>`, `&`, U+2028 and U+2029 as
 * `\uXXXX`). This is byte for byte what the format's reference builder
 * writes with json.MarshalIndent (osimage-format.md, "Serialization"), so
 * equal inputs give equal digests.
 */
const goEscapes: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

export function canonicalJson(value: unknown): Buffer {
  // These characters can only occur inside JSON strings, so replacing them everywhere is safe.
  const text = JSON.stringify(value, null, '\t').replace(/[<>&\u2028\u2029]/g, (c) => goEscapes[c]!);
  return Buffer.from(text + '\n', 'utf8');
}
