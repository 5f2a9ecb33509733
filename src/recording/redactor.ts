export const REDACTED = '[REDACTED]';

export const DEFAULT_REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];
export const DEFAULT_REDACTED_QUERY_PARAMS = ['access_token', 'api_key', 'apikey', 'client_secret', 'password', 'token'];
export const DEFAULT_REDACTED_JSON_FIELDS = ['access_token', 'client_secret', 'password', 'refresh_token'];

export interface RedactionRules {
  headers: readonly string[];
  queryParams: readonly string[];
  jsonFields: readonly string[];
}

function lowerSet(defaults: readonly string[], extra: readonly string[]): Set<string> {
  return new Set([...defaults, ...extra].map((name) => name.toLowerCase()));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Removes secrets from everything recorded: header values, query parameters and JSON bodies. */
export class Redactor {
  readonly #headers: Set<string>;
  readonly #queryParams: Set<string>;
  readonly #jsonFields: Set<string>;
  readonly #jsonFieldMarkers: string[];
  readonly #jsonFallback: RegExp | null;

  constructor(extra: RedactionRules = { headers: [], queryParams: [], jsonFields: [] }) {
    this.#headers = lowerSet(DEFAULT_REDACTED_HEADERS, extra.headers);
    this.#queryParams = lowerSet(DEFAULT_REDACTED_QUERY_PARAMS, extra.queryParams);
    this.#jsonFields = lowerSet(DEFAULT_REDACTED_JSON_FIELDS, extra.jsonFields);
    this.#jsonFieldMarkers = [...this.#jsonFields].map((field) => JSON.stringify(field));
    const alternatives = [...this.#jsonFields].map(escapeRegExp).join('|');
    // For bodies that do not parse (truncated, or not JSON after all): scalar values of the
    // named keys, including a string cut off by the truncation.
    this.#jsonFallback =
      alternatives === '' ? null : new RegExp(`("(?:${alternatives})"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"?|[^,}\\]\\s]*)`, 'gi');
  }

  isSecretHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }

  headerValue(name: string, value: string): string {
    return this.#headers.has(name.toLowerCase()) ? REDACTED : value;
  }

  /** A request target with the values of secret query parameters replaced. */
  uri(uri: string): string {
    const queryAt = uri.indexOf('?');
    if (queryAt === -1) return uri;
    const pairs = uri.slice(queryAt + 1).split('&');
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
      if (this.#queryParams.has(name)) {
        pairs[i] = `${rawName}=${REDACTED}`;
        changed = true;
      }
    }
    return changed ? `${uri.slice(0, queryAt + 1)}${pairs.join('&')}` : uri;
  }

  /** Whether a body of this content type is searched for secret JSON fields. */
  appliesToBody(contentType: string): boolean {
    return this.#jsonFields.size > 0 && /[/+]json\b/i.test(contentType);
  }

  /** The body with secret JSON fields replaced, or the same buffer when it holds none. */
  jsonBody(body: Buffer): Buffer {
    const text = body.toString('utf8');
    const lower = text.toLowerCase();
    if (!this.#jsonFieldMarkers.some((marker) => lower.includes(marker))) return body;
    try {
      return Buffer.from(JSON.stringify(this.#redactValue(JSON.parse(text))));
    } catch {
      return Buffer.from(text.replace(this.#jsonFallback as RegExp, `$1"${REDACTED}"`));
    }
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
