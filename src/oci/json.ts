/**
 * Canonical serialization used for every JSON document oci-os writes
 * (config, manifest, index): one tab per indentation level, `": "` after
 * keys, a trailing newline, and strings escaped as Go's encoding/json
 * escapes them (`<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`). This is byte
 * for byte what the format's reference builder writes with
 * json.MarshalIndent (osimage-format.md, "Serialization"), so equal inputs
 * give equal digests.
 *
 * A lone UTF-16 surrogate is written as U+FFFD (bytes EF BF BD), not as
 * the escape `\ud800` JSON.stringify writes: a Go string holds UTF-8, and
 * Go's decoder turns a lone surrogate escape into U+FFFD, so that is what
 * the reference builder writes for the same product info
 * (osimage-format.md, "Edge cases").
 *
 * Go writes a struct's fields in declaration order and a map's keys sorted
 * by their bytes. Here a plain object is a struct (keys in insertion order)
 * and an object without a prototype is a map ({@link jsonMap}: keys sorted as
 * Go sorts them, which JavaScript's own key order cannot express: it puts
 * integer-like keys first, in numeric order).
 */
const goEscapes: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * The string with each lone UTF-16 surrogate replaced by U+FFFD, as Go's
 * encoding/json decodes a lone `\uD800`-style escape (String.prototype.toWellFormed).
 */
export function wellFormed(s: string): string {
  return s.replace(loneSurrogate, '\ufffd');
}

/**
 * JSON text bytes decoded as Go's encoding/json decodes a string: every byte
 * that does not start a valid UTF-8 sequence becomes its own U+FFFD
 * (utf8.DecodeRune's RuneError of width 1). TextDecoder and Buffer replace a
 * whole broken sequence with one U+FFFD instead (`E2 82 41` gives one where Go
 * gives two), which would make our bytes differ from Monogon's builder.
 */
export function decodeUtf8AsGo(bytes: Uint8Array): string {
  const valid = new TextDecoder('utf-8', { fatal: true });
  try {
    return valid.decode(bytes); // the common case: nothing to replace
  } catch {
    // fall through to the byte-by-byte walk
  }
  let out = '';
  let start = 0; // first byte not yet copied to out
  let i = 0;
  while (i < bytes.length) {
    const n = utf8SequenceLength(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += Buffer.from(bytes.subarray(start, i)).toString('utf8') + '\ufffd';
    i += 1;
    start = i;
  }
  return out + Buffer.from(bytes.subarray(start)).toString('utf8');
}

/** Length of the valid UTF-8 sequence at `i` (as Go's utf8.DecodeRune accepts it), 0 when there is none. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // E0 needs A0-BF (no overlong forms), ED needs 80-9F (no surrogates).
    const [lo, hi] = c === 0xe0 ? [0xa0, 0xbf] : c === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // F0 needs 90-BF (no overlong forms), F4 needs 80-8F (nothing past U+10FFFF).
    const [lo, hi] = c === 0xf0 ? [0x90, 0xbf] : c === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/**
 * A map for a JSON document: an object without a prototype, so a key such
 * as `__proto__` is an ordinary key (on a plain object assigning it sets the
 * prototype and the entry is lost), serialized by canonicalJson with its
 * keys sorted. Later entries win.
 */
export function jsonMap<V>(entries: Iterable<readonly [string, V]> | Record<string, V>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  const list = Symbol.iterator in entries ? (entries as Iterable<readonly [string, V]>) : Object.entries(entries as Record<string, V>);
  for (const [k, v] of list) out[k] = v;
  return out;
}

/** Go's map key order: by the UTF-8 bytes of the keys. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** JSON.stringify(value, null, '\t'), but for the key order of maps. */
function encode(value: unknown, key: string, indent: string, stack: Set<object>): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON(key: string): unknown }).toJSON(key);
  }
  if (typeof value === 'string' || value instanceof String) return JSON.stringify(wellFormed(String(value)));
  if (value === null || typeof value !== 'object' || value instanceof Number || value instanceof Boolean) {
    return JSON.stringify(value);
  }
  if (stack.has(value)) throw new TypeError('Converting circular structure to JSON');
  stack.add(value);
  const inner = indent + '\t';
  let text: string;
  if (Array.isArray(value)) {
    const items = value.map((v, i) => encode(v, String(i), inner, stack) ?? 'null');
    text = items.length === 0 ? '[]' : `[\n${inner}${items.join(`,\n${inner}`)}\n${indent}]`;
  } else {
    const keys = Object.keys(value);
    if (Object.getPrototypeOf(value) === null) keys.sort(compareKeys);
    const members: string[] = [];
    for (const k of keys) {
      const v = encode((value as Record<string, unknown>)[k], k, inner, stack);
      if (v !== undefined) members.push(`${JSON.stringify(wellFormed(k))}: ${v}`);
    }
    text = members.length === 0 ? '{}' : `{\n${inner}${members.join(`,\n${inner}`)}\n${indent}}`;
  }
  stack.delete(value);
  return text;
}

export function canonicalJson(value: unknown): Buffer {
  const text = encode(value, '', '', new Set());
  if (text === undefined) throw new TypeError('canonicalJson: the value has no JSON form');
  // These characters can only occur inside JSON strings, so replacing them everywhere is safe.
  return Buffer.from(text.replace(/[<>&\u2028\u2029]/g, (c) => goEscapes[c]!) + '\n', 'utf8');
}
