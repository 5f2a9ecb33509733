import { JsonFieldRedactor } from './json-redaction.js';

export const REDACTED = '[REDACTED]';

export const DEFAULT_REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];
export const DEFAULT_REDACTED_QUERY_PARAMS = ['access_token', 'api_key', 'apikey', 'client_secret', 'code', 'id_token', 'password', 'refresh_token', 'token'];
// Not `code`: it would wipe error codes such as {"code":"NOT_FOUND"} from every error body.
export const DEFAULT_REDACTED_JSON_FIELDS = ['access_token', 'client_secret', 'id_token', 'password', 'refresh_token'];

const URL_HEADERS = new Set(['location', 'content-location', 'referer', 'origin']);

const JSON_TYPE = /[/+]json\b/i;
const FORM_TYPE = /^\s*application\/x-www-form-urlencoded\b/i;
/** `text/plain` or no content type at all: such a body may well be JSON. */
const UNTYPED_TYPE = /^\s*(?:text\/plain\s*(?:;|$)|$)/i;
const NAME_BRACKETS = /[[\]]/;

export interface RedactionRules {
  headers: readonly string[];
  queryParams: readonly string[];
  jsonFields: readonly string[];
}

function lowerSet(defaults: readonly string[], extra: readonly string[]): Set<string> {
  return new Set([...defaults, ...extra].map((name) => name.toLowerCase()));
}

/** Whether the body begins, after any white space or byte order mark, like a JSON object or array. */
function startsLikeJson(body: Buffer): boolean {
  let at = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  while (body[at] === 0x20 || body[at] === 0x0a || body[at] === 0x0d || body[at] === 0x09) at++;
  return body[at] === 0x7b || body[at] === 0x5b;
}

/** A form field or query parameter name as sent, percent- and plus-decoded and in lowercase. */
function decodedName(raw: string): string {
  if (!raw.includes('%') && !raw.includes('+')) return raw.toLowerCase();
  try {
    return decodeURIComponent(raw.replaceAll('+', ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** Removes secrets from everything recorded: header values, URL parameters and JSON or form bodies. */
export class Redactor {
  readonly #headers: Set<string>;
  readonly #queryParams: Set<string>;
  readonly #formFields: Set<string>;
  readonly #json: JsonFieldRedactor;
  /** Lengths of the header names that may need redaction: most names are passed over by length alone. */
  readonly #headerNameLengths: Set<number>;

  constructor(extra: RedactionRules = { headers: [], queryParams: [], jsonFields: [] }) {
    this.#headers = lowerSet(DEFAULT_REDACTED_HEADERS, extra.headers);
    this.#queryParams = lowerSet(DEFAULT_REDACTED_QUERY_PARAMS, extra.queryParams);
    const jsonFields = lowerSet(DEFAULT_REDACTED_JSON_FIELDS, extra.jsonFields);
    this.#formFields = new Set([...this.#queryParams, ...jsonFields]);
    this.#json = new JsonFieldRedactor(jsonFields, REDACTED);
    this.#headerNameLengths = new Set([...this.#headers, ...URL_HEADERS].map((name) => name.length));
  }

  /** A header value as it may be recorded; URLs in Location, Content-Location, Referer or Origin lose their secret parameters too. */
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

  /** A request target or URL with the values of secret query and fragment parameters replaced. */
  uri(uri: string): string {
    const fragmentAt = uri.indexOf('#');
    const queryAt = uri.indexOf('?');
    if (fragmentAt === -1 && queryAt === -1) return uri;
    // The fragment first, so the query's indexes still hold afterwards.
    let redacted = fragmentAt === -1 ? uri : this.#pairs(uri, fragmentAt + 1, uri.length, this.#queryParams);
    const queryEnd = fragmentAt === -1 ? uri.length : fragmentAt;
    if (queryAt !== -1 && queryAt < queryEnd) redacted = this.#pairs(redacted, queryAt + 1, queryEnd, this.#queryParams);
    return redacted;
  }

  /** `text` with the values of the secret `name=value` pairs between `from` and `to` replaced; `text` itself when none is there. */
  #pairs(text: string, from: number, to: number, secret: ReadonlySet<string>): string {
    let redacted = '';
    let copiedTo = 0;
    let equals = -1;
    for (let start = from; start < to; ) {
      let end = text.indexOf('&', start);
      if (end === -1 || end > to) end = to;
      if (equals < start) {
        equals = text.indexOf('=', start);
        if (equals === -1) break;
      }
      if (equals < end && this.#isSecretName(text.slice(start, equals), secret)) {
        redacted += text.slice(copiedTo, equals + 1) + REDACTED;
        copiedTo = end;
      }
      start = end + 1;
    }
    return copiedTo === 0 ? text : redacted + text.slice(copiedTo);
  }

  /**
   * Whether a field name as sent is secret: its decoded name, or its base name or any bracketed
   * part (`user[password]`, `token[]`). In a fragment such as `#/callback?token=…` the name starts
   * after the `?`.
   */
  #isSecretName(raw: string, secret: ReadonlySet<string>): boolean {
    let name = decodedName(raw);
    const queryAt = name.lastIndexOf('?');
    if (queryAt !== -1) name = name.slice(queryAt + 1);
    if (secret.has(name)) return true;
    return name.includes('[') && name.split(NAME_BRACKETS).some((part) => secret.has(part));
  }

  /**
   * Whether a body of this content type must be held whole to be searched for secrets: JSON, form,
   * `text/plain` and untyped bodies (which are searched when they turn out to be JSON).
   */
  appliesToBody(contentType: string): boolean {
    return JSON_TYPE.test(contentType) || FORM_TYPE.test(contentType) || UNTYPED_TYPE.test(contentType);
  }

  /** The body with its secret fields replaced, or the same buffer when it holds none (or is of a type not searched). */
  body(contentType: string, body: Buffer): Buffer {
    if (FORM_TYPE.test(contentType)) {
      // A form's fields are secret when named as query parameters or as JSON fields.
      const text = body.toString('latin1');
      const redacted = this.#pairs(text, 0, text.length, this.#formFields);
      return redacted === text ? body : Buffer.from(redacted, 'latin1');
    }
    if (JSON_TYPE.test(contentType) || (UNTYPED_TYPE.test(contentType) && startsLikeJson(body))) return this.jsonBody(body);
    return body;
  }

  /** The body with the values of secret JSON fields replaced, every other byte kept; the same buffer when it holds none. */
  jsonBody(body: Buffer): Buffer {
    return this.#json.redact(body);
  }
}
