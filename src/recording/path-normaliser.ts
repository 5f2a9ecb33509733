export interface NormaliseRules {
  uuids: boolean;
  ulids: boolean;
  numbers: boolean;
  patterns: readonly string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i;
const NUMBER = /^\d+$/;

/**
 * Builds the function that turns a request path into the pattern used to group traffic:
 * `/users/42/orders/0190b1f2-...` becomes `/users/{id}/orders/{uuid}`. Custom patterns replace
 * whole segments they match with `{var}`.
 */
export function pathNormaliser(rules: NormaliseRules): (path: string) => string {
  const custom = rules.patterns.map((pattern) => new RegExp(`^(?:${pattern})$`));
  const normaliseSegment = (segment: string): string => {
    if (segment === '') return segment;
    if (rules.uuids && UUID.test(segment)) return '{uuid}';
    if (rules.ulids && ULID.test(segment)) return '{ulid}';
    if (rules.numbers && NUMBER.test(segment)) return '{id}';
    for (const pattern of custom) if (pattern.test(segment)) return '{var}';
    return segment;
  };
  return (path) => path.split('/').map(normaliseSegment).join('/');
}
