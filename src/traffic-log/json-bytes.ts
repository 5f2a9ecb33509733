import { isUtf8 } from 'node:buffer';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Strings up to this length are copied char by char; longer ones by one native call. */
const SHORT = 48;

/** Whether a character code may be copied into a JSON string as one byte, unescaped. */
function plain(code: number): boolean {
  return code >= 0x20 && code < 0x7f && code !== QUOTE && code !== BACKSLASH;
}

/**
 * Header bytes are opaque to HTTP; records are UTF-8. Valid UTF-8 is read as UTF-8 (and a
 * string Node decoded byte by byte as Latin-1 is put back together), anything else as Latin-1.
 */
function headerText(value: string | Buffer): string {
  if (typeof value !== 'string') return isUtf8(value) ? value.toString('utf8') : value.toString('latin1');
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0xff) return value;
  const bytes = Buffer.from(value, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : value;
}

/**
 * Writes JSON straight into one reused buffer: constant fragments are copied as pre-encoded
 * bytes, plain ASCII is copied without an intermediate string, and only text that needs escaping
 * goes through JSON.stringify. One buffer serves every line of a batch, so formatting allocates
 * next to nothing.
 */
export class JsonBytes {
  #buffer: Buffer;
  #at = 0;

  constructor(initialBytes = 256 * 1024) {
    this.#buffer = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.#at;
  }

  /** What was written since the last reset; valid until the next write. */
  view(): Buffer {
    return this.#buffer.subarray(0, this.#at);
  }

  reset(): void {
    this.#at = 0;
  }

  #room(bytes: number): void {
    if (this.#at + bytes <= this.#buffer.length) return;
    const larger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#at + bytes));
    this.#buffer.copy(larger, 0, 0, this.#at);
    this.#buffer = larger;
  }

  /** Pre-encoded bytes. */
  raw(fragment: Uint8Array): void {
    this.#room(fragment.length);
    this.#buffer.set(fragment, this.#at);
    this.#at += fragment.length;
  }

  /** Text known to be plain ASCII (digits, hex ids, fixed words). */
  ascii(text: string): void {
    const length = text.length;
    this.#room(length);
    if (length > SHORT) {
      this.#at += this.#buffer.write(text, this.#at, 'latin1');
      return;
    }
    const buffer = this.#buffer;
    let at = this.#at;
    for (let i = 0; i < length; i++) buffer[at++] = text.charCodeAt(i);
    this.#at = at;
  }

  /** A non-negative integer. */
  int(value: number): void {
    if (value < 0 || value > 0x7fffffff || !Number.isInteger(value)) return this.ascii(String(value));
    this.#room(10);
    const buffer = this.#buffer;
    if (value < 10) {
      buffer[this.#at++] = 0x30 + value;
      return;
    }
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let at = this.#at + digits;
    this.#at = at;
    for (let rest = value; rest > 0; rest = Math.floor(rest / 10)) buffer[--at] = 0x30 + (rest % 10);
  }

  /** A non-negative number with at most three decimals, as JavaScript would print it. */
  decimal3(value: number): void {
    const thousandths = Math.round(Math.max(value, 0) * 1000);
    this.int(Math.floor(thousandths / 1000));
    let fraction = thousandths % 1000;
    if (fraction === 0) return;
    this.#room(4);
    const buffer = this.#buffer;
    buffer[this.#at++] = 0x2e;
    let divisor = 100;
    while (fraction > 0) {
      const digit = Math.floor(fraction / divisor);
      buffer[this.#at++] = 0x30 + digit;
      fraction -= digit * divisor;
      divisor /= 10;
    }
  }

  /** A JSON string. */
  string(text: string): void {
    this.#room(1);
    this.#buffer[this.#at++] = QUOTE;
    this.stringContent(text);
    this.#room(1);
    this.#buffer[this.#at++] = QUOTE;
  }

  stringOrNull(text: string | null): void {
    if (text === null) this.ascii('null');
    else this.string(text);
  }

  /** Text inside a JSON string, escaped as needed. */
  stringContent(text: string): void {
    const length = text.length;
    this.#room(length);
    const buffer = this.#buffer;
    const start = this.#at;
    let at = start;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (!plain(code)) {
        this.#at = start;
        return this.#escaped(text);
      }
      buffer[at++] = code;
    }
    this.#at = at;
  }

  /** Header bytes or text inside a JSON string: copied as they are when plain ASCII. */
  headerContent(value: string | Buffer): void {
    if (typeof value === 'string') {
      for (let i = 0; i < value.length; i++) if (!plain(value.charCodeAt(i))) return this.#escaped(headerText(value));
      return this.ascii(value);
    }
    for (let i = 0; i < value.length; i++) if (!plain(value[i] as number)) return this.#escaped(headerText(value));
    this.raw(value);
  }

  #escaped(text: string): void {
    const json = JSON.stringify(text);
    this.#room(json.length * 3);
    this.#at += this.#buffer.write(json.slice(1, -1), this.#at, 'utf8');
  }
}

/** Pre-encodes a constant fragment. */
export function fragment(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}
