/**
 * Canonical serialization used for every JSON document oci-os writes
 * (config, manifest, index): one tab per indentation level, `": "` after
 * keys, keys in insertion order, a trailing newline. This is the
 * serialization of Monogon's builder (osimage-format.md, "Serialization"),
 * so equal inputs give equal digests.
 */
export function canonicalJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, '\t') + '\n', 'utf8');
}
