/**
 * A strict RFC 8259 JSON parser for headers of files people download (safetensors): duplicate
 * keys rejected, numbers kept as source text, objects as Maps, bounded nesting.
 */

/** Nesting deeper than this is rejected. */
const MAX_JSON_DEPTH = 64;

// // JSON.parse cannot be used as is: it silently keeps the last of duplicate keys (the spec forbids
// duplicates, and a reader that disagrees with others about which duplicate wins is an attack
// vector), it rounds integers above 2^53 and it accepts "1.0"/"1e3" where the reference wants an
// integer. This small RFC 8259 parser keeps numbers as their source text and objects as Maps (so
// a key like "__proto__" is just a key).

export class JsonNumber {
  constructor(readonly raw: string) {}
}
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

export class JsonParser {
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly text: string,
    private readonly fail: (message: string) => never,
  ) {}

  parseDocument(): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue();
    // Trailing whitespace is allowed (the spec's padding is spaces; serde_json accepts any JSON
    // whitespace there), anything else is not.
    this.skipWhitespace();
    if (this.pos < this.text.length) this.syntaxError('unexpected data after the JSON value');
    return value;
  }

  private syntaxError(what: string): never {
    const near = JSON.stringify(this.text.slice(this.pos, this.pos + 16));
    return this.fail(`header is not valid JSON: ${what} at character ${this.pos} (near ${near})`);
  }

  private skipWhitespace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  private parseValue(): JsonValue {
    const c = this.text.charAt(this.pos);
    switch (c) {
      case '{':
        return this.parseObject();
      case '[':
        return this.parseArray();
      case '"':
        return this.parseString();
      case 't':
        return this.parseLiteral('true', true);
      case 'f':
        return this.parseLiteral('false', false);
      case 'n':
        return this.parseLiteral('null', null);
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
        return this.syntaxError(c === '' ? 'unexpected end of input' : 'unexpected character');
    }
  }

  private enter(): void {
    if (++this.depth > MAX_JSON_DEPTH) this.syntaxError(`nesting deeper than ${MAX_JSON_DEPTH}`);
  }

  /**
   * Enters the object or array whose opening bracket is at pos; true when it is empty (the
   * closing bracket consumed and the nesting left again).
   */
  private openContainer(close: '}' | ']'): boolean {
    this.enter();
    this.pos++; // '{' or '['
    this.skipWhitespace();
    if (this.text[this.pos] !== close) return false;
    this.pos++;
    this.depth--;
    return true;
  }

  /**
   * After a member or element: consumes the ',' before the next one (false), or the closing
   * bracket and leaves the nesting (true).
   */
  private closeAfterItem(close: '}' | ']'): boolean {
    this.skipWhitespace();
    const c = this.text[this.pos];
    this.pos++;
    if (c === close) {
      this.depth--;
      return true;
    }
    if (c !== ',') {
      this.pos--;
      this.syntaxError(`expected ',' or '${close}'`);
    }
    this.skipWhitespace();
    return false;
  }

  private parseObject(): JsonObject {
    const out: JsonObject = new Map();
    if (this.openContainer('}')) return out;
    do {
      if (this.text[this.pos] !== '"') this.syntaxError('expected a string key');
      const keyAt = this.pos;
      const key = this.parseString();
      if (out.has(key)) {
        this.fail(
          `header JSON has duplicate key ${JSON.stringify(key)} at character ${keyAt}; ` +
            'duplicate keys are forbidden by the safetensors spec',
        );
      }
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.syntaxError("expected ':'");
      this.pos++;
      this.skipWhitespace();
      out.set(key, this.parseValue());
    } while (!this.closeAfterItem('}'));
    return out;
  }

  private parseArray(): JsonValue[] {
    const out: JsonValue[] = [];
    if (this.openContainer(']')) return out;
    do out.push(this.parseValue());
    while (!this.closeAfterItem(']'));
    return out;
  }

  private parseString(): string {
    const t = this.text;
    this.pos++; // opening quote
    let out = '';
    let runStart = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.syntaxError('unterminated string');
      const c = t.charCodeAt(this.pos);
      if (c === 0x22 /* " */) {
        out += t.slice(runStart, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.syntaxError('unescaped control character in string');
      if (c !== 0x5c /* \ */) {
        this.pos++;
        continue;
      }
      out += t.slice(runStart, this.pos);
      const e = t[this.pos + 1];
      if (e === 'u') {
        const unit = this.hex4(this.pos + 2);
        this.pos += 6;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          // A high surrogate must be followed by an escaped low surrogate; lone surrogates are
          // not Unicode text (serde_json rejects them too).
          if (t[this.pos] !== '\\' || t[this.pos + 1] !== 'u') this.syntaxError('lone surrogate');
          const low = this.hex4(this.pos + 2);
          if (low < 0xdc00 || low > 0xdfff) this.syntaxError('lone surrogate');
          out += String.fromCharCode(unit, low);
          this.pos += 6;
        } else {
          if (unit >= 0xdc00 && unit <= 0xdfff) this.syntaxError('lone surrogate');
          out += String.fromCharCode(unit);
        }
      } else if (e !== undefined && Object.hasOwn(SIMPLE_ESCAPES, e)) {
        out += SIMPLE_ESCAPES[e];
        this.pos += 2;
      } else {
        this.syntaxError('invalid escape');
      }
      runStart = this.pos;
    }
  }

  private hex4(at: number): number {
    const s = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(s)) {
      this.pos = at;
      this.syntaxError('invalid \\u escape');
    }
    return parseInt(s, 16);
  }

  private parseNumber(): JsonNumber {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (m === null) return this.syntaxError('invalid number');
    this.pos += m[0].length;
    return new JsonNumber(m[0]);
  }

  private parseLiteral<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.syntaxError('unexpected character');
    this.pos += word.length;
    return value;
  }
}

/** A short human description of a JSON value for error messages ("found ..."). */
export function describeJson(v: JsonValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') {
    return v.length > 40 ? `${JSON.stringify(v.slice(0, 40))}...` : JSON.stringify(v);
  }
  if (v instanceof JsonNumber) return v.raw;
  if (Array.isArray(v)) {
    const text = `[${v.map(describeJson).join(', ')}]`;
    return text.length > 60 ? `an array of ${v.length} items` : text;
  }
  return 'an object';
}

/** Returns the value if it is a non-negative integer that a JS number represents exactly. */
export function asIndex(v: JsonValue | undefined): number | undefined {
  // Integer syntax only: the reference deserializes into usize, which rejects "1.0" and "1e3".
  if (!(v instanceof JsonNumber) || !/^(?:0|[1-9][0-9]*)$/.test(v.raw)) return undefined;
  const n = Number(v.raw);
  return Number.isSafeInteger(n) ? n : undefined;
}
