/** Headers that describe one connection or hop, not the message (RFC 9110 sections 7.6.1, 11.7). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Headers the gateway sets itself on the way to the back end. `Expect` too: the gateway has
 * already answered `100-continue` to the client and sends the body on at once.
 */
const REPLACED_UPSTREAM = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-correlation-id', 'expect', 'via']);

export const CORRELATION_HEADER = 'x-correlation-id';
const VIA = '1.1 tollgate';

/** Extra hop-by-hop names listed in a Connection header, lower-cased; null when there are none. */
function connectionTokens(connection: string | undefined): Set<string> | null {
  if (connection === undefined) return null;
  const tokens = connection.toLowerCase().split(',');
  const named = new Set<string>();
  for (const token of tokens) {
    const name = token.trim();
    if (name !== '' && name !== 'close' && name !== 'keep-alive') named.add(name);
  }
  return named.size === 0 ? null : named;
}

export interface ForwardedFor {
  clientAddr: string;
  protocol: string;
  host: string;
  correlationId: string;
}

/** The client's headers as a flat name/value list for the back end, with forwarding headers added. */
export function upstreamRequestHeaders(raw: readonly string[], connection: string | undefined, forwarded: ForwardedFor): string[] {
  const named = connectionTokens(connection);
  const out: string[] = [];
  let priorFor = '';
  let priorVia = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === 'x-forwarded-for') {
      priorFor = priorFor === '' ? (raw[i + 1] as string) : `${priorFor}, ${raw[i + 1]}`;
      continue;
    }
    if (lower === 'via') {
      priorVia = priorVia === '' ? (raw[i + 1] as string) : `${priorVia}, ${raw[i + 1]}`;
      continue;
    }
    if (REPLACED_UPSTREAM.has(lower) || named?.has(lower)) continue;
    // A WebSocket handshake too: undici sets Upgrade and Connection for the back end itself.
    if (HOP_BY_HOP.has(lower)) continue;
    out.push(name, raw[i + 1] as string);
  }
  out.push(
    'x-forwarded-for',
    priorFor === '' ? forwarded.clientAddr : `${priorFor}, ${forwarded.clientAddr}`,
    'x-forwarded-proto',
    forwarded.protocol,
    'x-forwarded-host',
    forwarded.host,
    CORRELATION_HEADER,
    forwarded.correlationId,
    // RFC 9110 section 7.6.3: an intermediary says it forwarded the message.
    'via',
    priorVia === '' ? VIA : `${priorVia}, ${VIA}`,
  );
  return out;
}

/** The back end's response headers as a flat list for the client, with the correlation id added. */
export function clientResponseHeaders(raw: readonly Buffer[], correlationId: string): string[] {
  const out: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    if (lower === 'connection') named = connectionTokens((raw[i + 1] as Buffer).toString('latin1'));
    if (HOP_BY_HOP.has(lower) || lower === CORRELATION_HEADER) continue;
    out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
  }
  if (named !== null) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (named.has((out[i] as string).toLowerCase())) out.splice(i, 2);
  }
  out.push('X-Correlation-ID', correlationId);
  return out;
}
