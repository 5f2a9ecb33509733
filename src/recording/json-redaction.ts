const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;
const FIRST_NON_ASCII = 0x80;

function isWhitespace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** Index of the quote closing the string whose content starts at `from`; -1 when the body ends first. */
function stringEnd(body: Buffer, from: number): number {
  const length = body.length;
  for (let at = from; at < length; at++) {
    const byte = body[at];
    if (byte === QUOTE) return at;
    if (byte === BACKSLASH) at++;
  }
  return -1;
}

/** Index just past the JSON value starting at `start`; the body's length when the body ends first. */
function valueEnd(body: Buffer, start: number): number {
  const first = body[start];
  if (first === QUOTE) {
    const end = stringEnd(body, start + 1);
    return end === -1 ? body.length : end + 1;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (let at = start; at < body.length; at++) {
      const byte = body[at];
      if (byte === QUOTE) {
        at = stringEnd(body, at + 1);
        if (at === -1) break;
      } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) depth++;
      else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && --depth === 0) return at + 1;
    }
    return body.length;
  }
  let at = start;
  while (at < body.length) {
    const byte = body[at];
    if (byte === COMMA || byte === CLOSE_BRACE || byte === CLOSE_BRACKET || byte === QUOTE || isWhitespace(byte)) break;
    at++;
  }
  return at;
}

function isPlainAscii(body: Buffer, start: number, end: number): boolean {
  for (let at = start; at < end; at++) {
    const byte = body[at] as number;
    if (byte === BACKSLASH || byte >= FIRST_NON_ASCII) return false;
  }
  return true;
}

const NO_NAMES: readonly Buffer[] = [];

/**
 * Replaces the value of every object key named as secret (case-insensitively, however the key is
 * escaped) in the raw bytes of a JSON text, and keeps every other byte: number spellings, spacing,
 * key order, duplicate keys. A text cut short has a secret value that runs to its end redacted to
 * its end; a text that is not JSON at all has any `"<secret>":` value redacted likewise.
 */
export class JsonFieldRedactor {
  readonly #names: ReadonlySet<string>;
  /** The ASCII names as lowercase bytes, by length: a plain key is compared without decoding it. */
  readonly #asciiNamesByLength: Buffer[][] = [];
  readonly #replacement: Buffer;

  /** `names` in lowercase; each of their values becomes the JSON string `replacement`. */
  constructor(names: ReadonlySet<string>, replacement: string) {
    this.#names = names;
    this.#replacement = Buffer.from(JSON.stringify(replacement));
    for (const name of names) {
      const bytes = Buffer.from(name);
      if (bytes.length !== name.length) continue;
      (this.#asciiNamesByLength[bytes.length] ??= []).push(bytes);
    }
  }

  /** The text with secret values replaced, or the same buffer when it holds none. */
  redact(body: Buffer): Buffer {
    let pieces: Buffer[] | null = null;
    let copiedTo = 0;
    const length = body.length;
    for (let at = 0; at < length; at++) {
      if (body[at] !== QUOTE) continue;
      const keyEnd = stringEnd(body, at + 1);
      if (keyEnd === -1) break;
      let colon = keyEnd + 1;
      while (isWhitespace(body[colon])) colon++;
      if (body[colon] !== COLON || !this.#isSecretKey(body, at + 1, keyEnd)) {
        at = keyEnd;
        continue;
      }
      let valueStart = colon + 1;
      while (isWhitespace(body[valueStart])) valueStart++;
      (pieces ??= []).push(body.subarray(copiedTo, valueStart), this.#replacement);
      copiedTo = valueEnd(body, valueStart);
      at = copiedTo - 1;
    }
    if (pieces === null) return body;
    pieces.push(body.subarray(copiedTo));
    return Buffer.concat(pieces);
  }

  /** Whether the key between `start` and `end` (its raw bytes, without quotes) names a secret. */
  #isSecretKey(body: Buffer, start: number, end: number): boolean {
    const length = end - start;
    if (isPlainAscii(body, start, end)) {
      for (const name of this.#asciiNamesByLength[length] ?? NO_NAMES) {
        if (equalsIgnoringAsciiCase(body, start, name)) return true;
      }
      return false;
    }
    const raw = body.toString('utf8', start, end);
    let key: string;
    try {
      key = JSON.parse(`"${raw}"`) as string;
    } catch {
      key = raw;
    }
    return this.#names.has(key.toLowerCase());
  }
}

/** Whether the bytes of `body` from `start` equal the lowercase `name`, ignoring the case of ASCII letters. */
function equalsIgnoringAsciiCase(body: Buffer, start: number, name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) {
    let byte = body[start + i] as number;
    if (byte >= UPPER_A && byte <= UPPER_Z) byte += 0x20;
    if (byte !== name[i]) return false;
  }
  return true;
}
