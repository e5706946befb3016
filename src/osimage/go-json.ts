/**
 * Decoding JSON into typed structs the way Go's encoding/json does, so that
 * oci-os accepts and refuses exactly the manifests and configs the format's
 * reader (Monogon's, written in Go) accepts and refuses.
 *
 * What that decoding refuses: a value of the wrong JSON type for its field
 * (null leaves a field as it was and empties a list, map or pointer), an
 * integer field written with a fraction or exponent (`24.0`, `2.4e1`) or
 * outside int64, a []byte that is not padded base64, nesting deeper than
 * 10000. Keys the structs do not name are ignored; a key matches a field
 * regardless of case (Go's folding, where `ſ` is `s` and the Kelvin sign
 * `k`); a repeated key decodes again into what the first one left (objects
 * merge, list elements are reused). JSON.parse keeps neither number
 * literals nor repeated keys, so the text is decoded from the tree of
 * oci/json-tree.ts, which keeps both.
 */
import { OciError } from '../errors.js';
import { decodeUtf8AsGo } from '../oci/json.js';
import { type JsonNode, JsonSyntaxError, parseJsonTree } from '../oci/json-tree.js';

/** A Go type, as encoding/json decodes into it. */
export type GoType = 'string' | 'bool' | 'int64' | 'bytes' | { slice: GoType } | { map: GoType } | { ptr: GoType } | GoStruct;

/** A struct: JSON names of its fields, and those left out of the decoded object when empty (omitempty, omitzero). */
export interface GoStruct {
  fields: Record<string, GoType>;
  omitEmpty?: readonly string[];
}

/** Reports what is wrong at a field path; never returns. */
type Fail = (what: string) => never;

/**
 * Decodes JSON bytes into a struct the way the format's reader does: the
 * bytes as Go decodes UTF-8, every field present (zero when absent), empty
 * omitempty fields left out. Throws INVALID_FORMAT `${where}: …` naming the
 * field that is wrong.
 */
export function decodeAsGo(bytes: Buffer, t: GoStruct, where: string): Record<string, unknown> {
  const fail: Fail = (what) => {
    throw new OciError('INVALID_FORMAT', `${where}: ${what}`);
  };
  let tree: JsonNode;
  try {
    tree = parseJsonTree(decodeUtf8AsGo(bytes));
  } catch (err) {
    if (err instanceof JsonSyntaxError) fail(`not valid JSON (${err.message})`);
    throw err;
  }
  if (tree.t !== 'object') fail('not a JSON object');
  return withoutEmpty(decodeGo(tree, t, zeroOf(t), '', fail), t) as Record<string, unknown>;
}

const isStruct = (t: GoType): t is GoStruct => typeof t === 'object' && 'fields' in t;

/** Go's zero value of a type: a struct has all its fields, a list, map or pointer is nil (null). */
function zeroOf(t: GoType): unknown {
  if (t === 'string') return '';
  if (t === 'bool') return false;
  if (t === 'int64') return 0;
  if (isStruct(t)) return Object.fromEntries(Object.entries(t.fields).map(([k, f]) => [k, zeroOf(f)]));
  return null;
}

/** Go's key folding for matching field names: ASCII case, plus `ſ` → S and the Kelvin sign → K. */
function foldName(s: string): string {
  return s.replace(/[a-z\u017f\u212a]/g, (c) => (c === '\u017f' ? 'S' : c === '\u212a' ? 'K' : c.toUpperCase()));
}

/** The field a JSON key decodes into: the exact name first, else one equal under Go's folding. */
function fieldFor(t: GoStruct, key: string): string | undefined {
  if (Object.hasOwn(t.fields, key)) return key;
  const folded = foldName(key);
  return Object.keys(t.fields).find((f) => foldName(f) === folded);
}

const kindOf = (n: JsonNode): string => (n.t === 'object' ? 'an object' : n.t === 'array' ? 'an array' : n.t === 'bool' ? 'a boolean' : `a ${n.t}`);
const intRe = /^-?(?:0|[1-9]\d*)$/;
const base64Re = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Decodes `node` into a value of type `t` that holds `current`, as encoding/json does; `fail` gets the field path and what is wrong. */
function decodeGo(node: JsonNode, t: GoType, current: unknown, path: string, fail: Fail): unknown {
  // Null changes no string, bool, number or struct, and makes a list, map or pointer nil.
  if (node.t === 'null') return t === 'string' || t === 'bool' || t === 'int64' || isStruct(t) ? current : null;
  const expect = (kind: JsonNode['t'], what: string): void => {
    if (node.t !== kind) fail(`${path} must be ${what}, not ${kindOf(node)}`);
  };
  if (t === 'string') {
    expect('string', 'a string');
    return (node as { v: string }).v;
  }
  if (t === 'bool') {
    expect('bool', 'true or false');
    return (node as { v: boolean }).v;
  }
  if (t === 'int64') {
    expect('number', 'an integer');
    return decodeInt64((node as { raw: string }).raw, path, fail);
  }
  if (t === 'bytes') return decodeBytes(node, path, fail);
  if (isStruct(t)) {
    expect('object', 'an object');
    return decodeStruct(node as { entries: Array<[string, JsonNode]> }, t, current, path, fail);
  }
  if ('ptr' in t) return decodeGo(node, t.ptr, current ?? zeroOf(t.ptr), path, fail);
  if ('slice' in t) {
    expect('array', 'an array');
    const prev = Array.isArray(current) ? current : [];
    return (node as { items: JsonNode[] }).items.map((item, i) => decodeGo(item, t.slice, i < prev.length ? prev[i] : zeroOf(t.slice), `${path}[${i}]`, fail));
  }
  expect('object', 'an object');
  return decodeMap(node as { entries: Array<[string, JsonNode]> }, t.map, current, path, fail);
}

/** An int64 field: only an integer literal (no fraction or exponent, as Go refuses them), within int64. */
function decodeInt64(raw: string, path: string, fail: Fail): number {
  if (!intRe.test(raw)) fail(`${path} must be an integer, not ${raw}`);
  // A literal of at most 15 characters is well within int64; only longer ones need the exact check.
  if (raw.length > 15 && (BigInt(raw) < INT64_MIN || BigInt(raw) > INT64_MAX)) fail(`${path} ${raw} does not fit in a signed 64-bit integer`);
  return Number(raw);
}

/** A []byte field: padded base64 (line breaks ignored, as Go's decoder ignores them), or an array of bytes; kept as base64. */
function decodeBytes(node: JsonNode, path: string, fail: Fail): string {
  if (node.t === 'string') {
    if (!base64Re.test(node.v.replace(/[\r\n]/g, ''))) fail(`${path} is not padded base64`);
    return node.v;
  }
  if (node.t !== 'array') fail(`${path} must be a base64 string, not ${kindOf(node)}`);
  const bytes = (node as { items: JsonNode[] }).items.map((b, i) => {
    if (b.t === 'null') return 0;
    if (b.t !== 'number' || !/^(?:0|[1-9]\d*)$/.test(b.raw) || Number(b.raw) > 255) fail(`${path}[${i}] must be a byte (0 to 255)`);
    return Number((b as { raw: string }).raw);
  });
  return Buffer.from(bytes).toString('base64');
}

/** A struct: each key decodes into its field, on top of what is there (so a repeated key merges); unknown keys are ignored. */
function decodeStruct(node: { entries: Array<[string, JsonNode]> }, t: GoStruct, current: unknown, path: string, fail: Fail): Record<string, unknown> {
  const out = { ...((current ?? zeroOf(t)) as Record<string, unknown>) };
  for (const [key, value] of node.entries) {
    const name = fieldFor(t, key);
    if (name !== undefined) out[name] = decodeGo(value, t.fields[name]!, out[name], path ? `${path}.${name}` : name, fail);
  }
  return out;
}

/** A map: every key kept as written, each value decoded from zero (a repeated key replaces, it does not merge). */
function decodeMap(node: { entries: Array<[string, JsonNode]> }, t: GoType, current: unknown, path: string, fail: Fail): Record<string, unknown> {
  const out = new Map(Object.entries((current ?? {}) as Record<string, unknown>));
  for (const [key, value] of node.entries) {
    out.set(key, decodeGo(value, t, zeroOf(t), `${path}[${JSON.stringify(key)}]`, fail));
  }
  return Object.fromEntries(out);
}

/** Drops the empty fields Go would leave out when writing the value (empty string, nil list, map or pointer). */
function withoutEmpty(v: unknown, t: GoType): unknown {
  if (v === null || typeof t !== 'object') return v;
  if ('ptr' in t) return withoutEmpty(v, t.ptr);
  if ('slice' in t) return (v as unknown[]).map((x) => withoutEmpty(x, t.slice));
  if ('map' in t) return v;
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(t.fields)) {
    const x = (v as Record<string, unknown>)[k];
    if (t.omitEmpty?.includes(k) && (x === '' || x === null)) continue;
    out[k] = withoutEmpty(x, f);
  }
  return out;
}
