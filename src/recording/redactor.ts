export const REDACTED = '[REDACTED]';

export const DEFAULT_REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];
export const DEFAULT_REDACTED_QUERY_PARAMS = ['access_token', 'api_key', 'apikey', 'client_secret', 'password', 'token'];
export const DEFAULT_REDACTED_JSON_FIELDS = ['access_token', 'client_secret', 'password', 'refresh_token'];

const URL_HEADERS = new Set(['location', 'content-location', 'referer', 'origin']);

export interface RedactionRules {
  headers: readonly string[];
  queryParams: readonly string[];
  jsonFields: readonly string[];
}

function lowerSet(defaults: readonly string[], extra: readonly string[]): Set<string> {
  return new Set([...defaults, ...extra].map((name) => name.toLowerCase()));
}

function unescapeKey(raw: string): string {
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/** Index just past the JSON value starting at `start`; the text's length when it is cut off. */
function endOfValue(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const char = text[i];
    if (inString) {
      if (char === '\\') i++;
      else if (char === '"') {
        inString = false;
        if (depth === 0) return i + 1;
      }
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') {
      if (depth === 0) return i;
      if (--depth === 0) return i + 1;
    } else if (depth === 0 && (char === ',' || char === ' ' || char === '\n' || char === '\r' || char === '\t')) return i;
  }
  return text.length;
}

/** Removes secrets from everything recorded: header values, query parameters and JSON bodies. */
export class Redactor {
  readonly #headers: Set<string>;
  readonly #queryParams: Set<string>;
  readonly #jsonFields: Set<string>;
  readonly #jsonFieldMarkers: string[];
  readonly #formFields: Set<string>;
  /** Lengths of the header names that may need redaction: most names are passed over by length alone. */
  readonly #headerNameLengths: Set<number>;

  constructor(extra: RedactionRules = { headers: [], queryParams: [], jsonFields: [] }) {
    this.#headers = lowerSet(DEFAULT_REDACTED_HEADERS, extra.headers);
    this.#queryParams = lowerSet(DEFAULT_REDACTED_QUERY_PARAMS, extra.queryParams);
    this.#jsonFields = lowerSet(DEFAULT_REDACTED_JSON_FIELDS, extra.jsonFields);
    this.#formFields = new Set([...this.#queryParams, ...this.#jsonFields]);
    this.#headerNameLengths = new Set([...this.#headers, ...URL_HEADERS].map((name) => name.length));
    // A key spelt with escapes (`pass\u0077ord`) is caught by the full parse, never skipped.
    this.#jsonFieldMarkers = [...[...this.#jsonFields].map((field) => JSON.stringify(field)), '\\u'];
  }

  /** A header value as it may be recorded; URLs in Location or Referer lose their secret parameters too. */
  headerValue(name: string, value: string): string {
    const lower = name.toLowerCase();
    if (this.#headers.has(lower)) return REDACTED;
    return URL_HEADERS.has(lower) ? this.uri(value) : value;
  }

  /**
   * A flat name/value header list as it may be recorded: secret values replaced, URL-valued
   * headers without their secret parameters. The same list when nothing needed replacing.
   */
  headerFields(fields: readonly (string | Buffer)[]): readonly (string | Buffer)[] {
    let redacted: (string | Buffer)[] | null = null;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string | Buffer;
      if (!this.#headerNameLengths.has(name.length)) continue;
      const lower = (typeof name === 'string' ? name : name.toString('latin1')).toLowerCase();
      let replacement: string | null = null;
      if (this.#headers.has(lower)) {
        replacement = REDACTED;
      } else if (URL_HEADERS.has(lower)) {
        const value = fields[i + 1] as string | Buffer;
        const text = typeof value === 'string' ? value : value.toString('latin1');
        const clean = this.uri(text);
        if (clean !== text) replacement = clean;
      }
      if (replacement === null) continue;
      redacted ??= fields.slice();
      redacted[i + 1] = replacement;
    }
    return redacted ?? fields;
  }

  /** A request target with the values of secret query parameters replaced. */
  uri(uri: string): string {
    const queryAt = uri.indexOf('?');
    if (queryAt === -1) return uri;
    const query = this.#form(uri.slice(queryAt + 1), this.#queryParams);
    return query === null ? uri : `${uri.slice(0, queryAt + 1)}${query}`;
  }

  /** `name=value&...` with the values of the named fields replaced; null when none is there. */
  #form(text: string, secret: Set<string>): string | null {
    const pairs = text.split('&');
    let changed = false;
    for (let i = 0; i < pairs.length; i++) {
      const pair = pairs[i] as string;
      const equals = pair.indexOf('=');
      const rawName = equals === -1 ? pair : pair.slice(0, equals);
      let name: string;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' ')).toLowerCase();
      } catch {
        name = rawName.toLowerCase();
      }
      if (secret.has(name)) {
        pairs[i] = `${rawName}=${REDACTED}`;
        changed = true;
      }
    }
    return changed ? pairs.join('&') : null;
  }

  /** Whether a body of this content type is searched for secrets (JSON fields, form fields). */
  appliesToBody(contentType: string): boolean {
    return /[/+]json\b/i.test(contentType) || /^application\/x-www-form-urlencoded\b/i.test(contentType);
  }

  /** The body with its secret fields replaced, or the same buffer when it holds none. */
  body(contentType: string, body: Buffer): Buffer {
    if (!/^application\/x-www-form-urlencoded\b/i.test(contentType)) return this.jsonBody(body);
    // A form's fields are secret when named as query parameters or as JSON fields.
    const form = this.#form(body.toString('latin1'), this.#formFields);
    return form === null ? body : Buffer.from(form, 'latin1');
  }

  /** The body with secret JSON fields replaced, or the same buffer when it holds none. */
  jsonBody(body: Buffer): Buffer {
    const text = body.toString('utf8');
    const lower = text.toLowerCase();
    if (!this.#jsonFieldMarkers.some((marker) => lower.includes(marker))) return body;
    try {
      return Buffer.from(JSON.stringify(this.#redactValue(JSON.parse(text))));
    } catch {
      return Buffer.from(this.#redactUnparsed(text));
    }
  }

  /** For text that does not parse (a truncated body): every value of a secret key, to its end or the text's. */
  #redactUnparsed(text: string): string {
    const key = /"((?:[^"\\]|\\.)*)"\s*:\s*/g;
    let out = '';
    let copiedTo = 0;
    for (let match = key.exec(text); match !== null; match = key.exec(text)) {
      if (!this.#jsonFields.has(unescapeKey(match[1] as string).toLowerCase())) continue;
      const valueStart = match.index + match[0].length;
      const valueEnd = endOfValue(text, valueStart);
      out += `${text.slice(copiedTo, valueStart)}"${REDACTED}"`;
      copiedTo = valueEnd;
      key.lastIndex = valueEnd;
    }
    return out + text.slice(copiedTo);
  }

  #redactValue(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((item) => this.#redactValue(item));
    if (value === null || typeof value !== 'object') return value;
    const result: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      result[key] = this.#jsonFields.has(key.toLowerCase()) ? REDACTED : this.#redactValue(inner);
    }
    return result;
  }
}
