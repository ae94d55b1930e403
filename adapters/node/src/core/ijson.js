/**
 * A validating JSON reader for I-JSON (RFC 7493) as replay/1 defines it (MSG-6 to MSG-8,
 * EVT-12, API-13). JSON.parse cannot be used alone: it keeps the last of two equal member
 * names, turns lone surrogate escapes into lone surrogates silently, and its reviver sees no
 * number's source text in Node 20. This reader builds the same value JSON.parse would, and
 * refuses what JSON.parse would accept but I-JSON does not.
 */
import { BadRequest } from './errors.js';

/** Largest integer every JSON decoder represents exactly (2^53 - 1), as decimal digits. */
const MAX_SAFE_DIGITS = '9007199254740991';

/** A whole document nested deeper than this is refused; ROB-7 only requires 64 for `data`. */
export const MAX_DEPTH = 128;

export class NotIJson extends BadRequest {}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/**
 * @typedef {{value: unknown, badNumbers: Array<Array<string|number>>}} Scan
 * `badNumbers` holds the path of every number MSG-8 refuses in `data`: the caller decides
 * which part of the document is `data` (MSG-8 binds only there).
 */

/**
 * Parse `text` as one JSON document, refusing duplicate member names and unpaired surrogates
 * anywhere in it.
 * @param {string} text
 * @returns {Scan}
 * @throws {NotIJson} for text that is not JSON or not I-JSON
 */
export function scanJson(text) {
  const scanner = new Scanner(text);
  scanner.ws();
  const value = scanner.value(1);
  scanner.ws();
  if (scanner.pos !== text.length) scanner.fail('unexpected text after the JSON value');
  return { value, badNumbers: scanner.badNumbers };
}

/**
 * Whether a number literal breaks MSG-8: an integer literal outside +-(2^53-1), or any number
 * that overflows a double.
 * @param {string} literal the number's source text
 */
export function numberLiteralIsBad(literal) {
  if (!Number.isFinite(Number(literal))) return true;
  if (/[.eE]/.test(literal)) return false;
  const digits = literal.startsWith('-') ? literal.slice(1) : literal;
  if (digits.length !== MAX_SAFE_DIGITS.length) return digits.length > MAX_SAFE_DIGITS.length;
  return digits > MAX_SAFE_DIGITS;
}

/**
 * Whether a string holds an unpaired UTF-16 surrogate (MSG-6).
 * @param {string} s
 */
export function hasLoneSurrogate(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    return true;
  }
  return false;
}

class Scanner {
  /** @param {string} text */
  constructor(text) {
    this.text = text;
    this.pos = 0;
    /** @type {Array<string|number>} */
    this.path = [];
    /** @type {Array<Array<string|number>>} */
    this.badNumbers = [];
  }

  /** @param {string} why @returns {never} */
  fail(why) {
    throw new NotIJson(`not valid I-JSON at character ${this.pos}: ${why}`);
  }

  ws() {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  /** @param {number} depth */
  value(depth) {
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [word, val] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(/** @type {string} */ (word), this.pos)) {
        this.pos += /** @type {string} */ (word).length;
        return val;
      }
    }
    return this.fail(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
  }

  /** @param {number} depth */
  object(depth) {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.pos++;
    /** @type {Record<string, unknown>} */
    const obj = {};
    const seen = new Set();
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return obj;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail('expected a member name');
      const key = this.string();
      if (seen.has(key)) this.fail(`member ${JSON.stringify(key)} named twice`);
      seen.add(key);
      this.ws();
      if (this.text[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      this.ws();
      this.path.push(key);
      const val = this.value(depth + 1);
      this.path.pop();
      // Own data property even for "__proto__", as JSON.parse makes it.
      Object.defineProperty(obj, key, { value: val, writable: true, enumerable: true, configurable: true });
      this.ws();
      const sep = this.text[this.pos++];
      if (sep === '}') return obj;
      if (sep !== ',') this.fail("expected ',' or '}'");
    }
  }

  /** @param {number} depth */
  array(depth) {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.pos++;
    const arr = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return arr;
    }
    for (;;) {
      this.ws();
      this.path.push(arr.length);
      arr.push(this.value(depth + 1));
      this.path.pop();
      this.ws();
      const sep = this.text[this.pos++];
      if (sep === ']') return arr;
      if (sep !== ',') this.fail("expected ',' or ']'");
    }
  }

  number() {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) return this.fail('malformed number');
    this.pos += m[0].length;
    if (numberLiteralIsBad(m[0])) this.badNumbers.push([...this.path]);
    return Number(m[0]);
  }

  string() {
    const t = this.text;
    let i = this.pos + 1;
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= t.length) this.fail('unterminated string');
      const c = t.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) {
        this.pos = i;
        this.fail('control character in a string');
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += t.slice(chunk, i);
      const e = t[i + 1];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(t.slice(i + 2, i + 6), 16));
        i += 6;
      } else {
        this.pos = i;
        this.fail('invalid escape');
      }
      chunk = i;
    }
    out += t.slice(chunk, i);
    this.pos = i + 1;
    if (hasLoneSurrogate(out)) this.fail('unpaired surrogate in a string');
    return out;
  }
}
