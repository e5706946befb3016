/**
 * A JSON parser (RFC 8259) that keeps what JSON.parse throws away: number
 * literals as written (`24`, `24.0` and `2.4e1` stay apart) and every
 * occurrence of a repeated key, in order. Decoders that must refuse or
 * merge what another implementation would (osimage/go-json.ts emulates
 * Go's encoding/json) work on this tree instead of on JSON.parse's values.
 *
 * Strings are decoded as Go decodes them: a lone surrogate escape
 * (`\ud800`) becomes U+FFFD. Nesting is limited as Go limits it; the parser
 * is iterative, so that depth costs no stack.
 */
import { wellFormed } from './json.js';

/** A parsed JSON value, keeping number literals and repeated keys. */
export type JsonNode =
  | { t: 'object'; entries: Array<[string, JsonNode]> }
  | { t: 'array'; items: JsonNode[] }
  | { t: 'string'; v: string }
  | { t: 'number'; raw: string }
  | { t: 'bool'; v: boolean }
  | { t: 'null' };

/** Text that is not JSON; the message says what was found where. */
export class JsonSyntaxError extends Error {}

/** Go's limit on nested arrays and objects. */
const MAX_JSON_DEPTH = 10000;
const numberRe = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const hexRe = /^[0-9a-fA-F]{4}$/;

/** Parses JSON text into a tree keeping number literals and repeated keys; throws JsonSyntaxError. */
export function parseJsonTree(text: string): JsonNode {
  return new TreeParser(text).parse();
}

/** An array or object whose members are being read; `key` is the key of the member being read. */
interface Open {
  node: JsonNode & { t: 'object' | 'array' };
  key: string;
}

class TreeParser {
  private pos = 0;
  /** Arrays and objects opened and not yet closed, innermost last (the parser's stack, kept off the call stack). */
  private readonly open: Open[] = [];

  constructor(private readonly text: string) {}

  parse(): JsonNode {
    for (;;) {
      this.skipSpace();
      const value = this.value();
      // Undefined: an array or object was opened, and its first member comes next.
      if (value === undefined) continue;
      const root = this.attach(value);
      if (root !== undefined) {
        this.skipSpace();
        if (this.pos < this.text.length) this.fail();
        return root;
      }
    }
  }

  private fail(): never {
    const { text, pos } = this;
    throw new JsonSyntaxError(`unexpected ${pos < text.length ? JSON.stringify(text[pos]) : 'end of input'} at character ${pos}`);
  }

  private skipSpace(): void {
    const { text } = this;
    for (let c = text.charCodeAt(this.pos); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++this.pos));
  }

  /** The value starting here; undefined when it opens an array or object that has members. */
  private value(): JsonNode | undefined {
    const c = this.text[this.pos];
    if (c === '{' || c === '[') return this.openContainer(c);
    if (c === '"') return { t: 'string', v: this.string() };
    return this.literal();
  }

  /** Opens an array or object; returns it when it is empty (and so already complete). */
  private openContainer(c: '{' | '['): JsonNode | undefined {
    this.pos++;
    const node: Open['node'] = c === '{' ? { t: 'object', entries: [] } : { t: 'array', items: [] };
    this.open.push({ node, key: '' });
    if (this.open.length > MAX_JSON_DEPTH) throw new JsonSyntaxError(`nested deeper than ${MAX_JSON_DEPTH} at character ${this.pos}`);
    this.skipSpace();
    if (this.text[this.pos] === (c === '{' ? '}' : ']')) {
      this.pos++;
      this.open.pop();
      return node;
    }
    if (c === '{') this.open[this.open.length - 1]!.key = this.key();
    return undefined;
  }

  /** `true`, `false`, `null` or a number. */
  private literal(): JsonNode {
    const { text } = this;
    if (text.startsWith('true', this.pos) || text.startsWith('false', this.pos) || text.startsWith('null', this.pos)) {
      const word = text[this.pos] === 't' ? 'true' : text[this.pos] === 'f' ? 'false' : 'null';
      this.pos += word.length;
      return word === 'null' ? { t: 'null' } : { t: 'bool', v: word === 'true' };
    }
    numberRe.lastIndex = this.pos;
    const m = numberRe.exec(text);
    if (!m) this.fail();
    this.pos += m![0].length;
    return { t: 'number', raw: m![0] };
  }

  /**
   * Hands a complete value to the innermost open container, closing each
   * container it completes. Returns the root value once there is no open
   * container left; undefined when another member follows.
   */
  private attach(value: JsonNode): JsonNode | undefined {
    for (let v = value; ; ) {
      const open = this.open[this.open.length - 1];
      if (!open) return v;
      if (open.node.t === 'object') open.node.entries.push([open.key, v]);
      else open.node.items.push(v);
      this.skipSpace();
      const next = this.text[this.pos++];
      if (next === ',') {
        if (open.node.t === 'object') open.key = this.key();
        return undefined;
      }
      if (next !== (open.node.t === 'object' ? '}' : ']')) {
        this.pos--;
        this.fail();
      }
      this.open.pop();
      v = open.node;
    }
  }

  /** An object member's key and the `:` after it. */
  private key(): string {
    this.skipSpace();
    const k = this.string();
    this.skipSpace();
    if (this.text[this.pos++] !== ':') {
      this.pos--;
      this.fail();
    }
    return k;
  }

  /** A string literal, decoded. */
  private string(): string {
    const { text } = this;
    if (text[this.pos] !== '"') this.fail();
    const start = ++this.pos;
    let escaped = false;
    for (;;) {
      const c = text.charCodeAt(this.pos);
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        this.escape();
      } else if (c < 0x20 || Number.isNaN(c)) {
        this.fail();
      } else {
        this.pos++;
      }
    }
    const raw = text.slice(start, this.pos++);
    // Go decodes a lone surrogate escape (`\ud800`) to U+FFFD; raw text holds none (decoded from UTF-8).
    return escaped ? wellFormed(JSON.parse(`"${raw}"`) as string) : raw;
  }

  /** Steps over the escape sequence at the backslash here, failing on one JSON does not have. */
  private escape(): void {
    const e = this.text[this.pos + 1];
    if (e === 'u') {
      if (!hexRe.test(this.text.slice(this.pos + 2, this.pos + 6))) this.fail();
      this.pos += 6;
    } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
      this.pos += 2;
    } else {
      this.pos++;
      this.fail();
    }
  }
}
