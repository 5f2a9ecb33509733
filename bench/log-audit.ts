import { createReadStream, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** What the traffic log files under a folder hold, read after the gateway is gone. */
export interface LogAudit {
  /** Correlation ids of the transactions with a `transactionSummary` line. */
  logged: Set<string>;
  /** Logged transactions with at least one body not stored, by the reason recorded (`queue-full`, ...). */
  notStored: Map<string, number>;
  /** Payload links in the log. */
  links: number;
  /** Links whose body is not whole on disk: what each says is wrong, in log order. */
  badLinks: string[];
  /** Lines that are not JSON (a line cut short), as `<file>:<line>: <bytes> bytes[, the last line]`. */
  unreadableLines: string[];
  /** The trace lines' messages (operational messages), except the start line. */
  traces: string[];
}

interface LegLine {
  protocolInfo: {
    recvPayload: string | null;
    sentPayload: string | null;
    recvPayloadTruncated?: boolean;
    sentPayloadTruncated?: boolean;
    recvPayloadNotStored?: string | null;
    sentPayloadNotStored?: string | null;
    http: { bytesReceived: number; bytesSent: number };
  };
}

interface LogLine {
  correlationId: string;
  transactionSummary?: unknown;
  transactionElement?: LegLine;
  trace?: { data: string };
}

const START_TRACE = /^gateway \S+ started /;

/**
 * What is wrong with the body a link points to, or null when it is whole: the file exists, and
 * holds `bytes` (for a packed link, `#offset=N&length=M`, the range is that long and lies inside
 * the file). With `bytes` null (a body cut at the limit) only the file and the range are checked.
 * `size` gives a file's size, or undefined when there is none.
 */
export function checkLink(link: string, bytes: number | null, size: (path: string) => number | undefined): string | null {
  const url = new URL(link);
  const fileSize = size(fileURLToPath(url));
  if (fileSize === undefined) return `${link}: no such file`;
  if (url.hash === '') return bytes === null || fileSize === bytes ? null : `${link}: ${fileSize} bytes, recorded ${bytes}`;
  const range = new URLSearchParams(url.hash.slice(1));
  const offset = Number(range.get('offset'));
  const length = Number(range.get('length'));
  if (bytes !== null && length !== bytes) return `${link}: length ${length}, recorded ${bytes}`;
  return offset + length <= fileSize ? null : `${link}: the range ends at ${offset + length}, the file at ${fileSize}`;
}

async function logFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((entry) => entry.isFile() && entry.name.endsWith('.log')).map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return [];
  }
}

/**
 * Reads every traffic log file under `dir` and checks every payload link in it. A link is checked
 * against the leg's byte count (`bytesReceived` for `recvPayload`, `bytesSent` for `sentPayload`):
 * the stored copy has that many bytes when the body was neither redacted nor cut, as the bench's
 * bodies are; links marked truncated are checked for their file only.
 */
export async function auditTrafficLog(dir: string): Promise<LogAudit> {
  const audit: LogAudit = { logged: new Set(), notStored: new Map(), links: 0, badLinks: [], unreadableLines: [], traces: [] };
  const sizes = new Map<string, number | undefined>();
  const size = (path: string): number | undefined => {
    if (!sizes.has(path)) sizes.set(path, statSync(path, { throwIfNoEntry: false })?.size);
    return sizes.get(path);
  };
  const notStoredIds = new Map<string, Set<string>>();
  const checkBody = (link: string | null, bytes: number, truncated: boolean | undefined): void => {
    if (link === null) return;
    audit.links++;
    const problem = checkLink(link, truncated === true ? null : bytes, size);
    if (problem !== null) audit.badLinks.push(problem);
  };
  const noteNotStored = (id: string, reason: string | null | undefined): void => {
    if (reason === null || reason === undefined) return;
    let ids = notStoredIds.get(reason);
    if (ids === undefined) notStoredIds.set(reason, (ids = new Set()));
    ids.add(id);
  };

  for (const file of (await logFiles(dir)).sort()) {
    let number = 0;
    let cut: string | null = null;
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      number++;
      if (cut !== null) audit.unreadableLines.push(cut);
      cut = null;
      if (text === '') continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        cut = `${file}:${number}: ${Buffer.byteLength(text)} bytes`;
        continue;
      }
      if (line.transactionSummary !== undefined) audit.logged.add(line.correlationId);
      if (line.trace !== undefined && !START_TRACE.test(line.trace.data)) audit.traces.push(line.trace.data);
      const leg = line.transactionElement?.protocolInfo;
      if (leg === undefined) continue;
      checkBody(leg.recvPayload, leg.http.bytesReceived, leg.recvPayloadTruncated);
      checkBody(leg.sentPayload, leg.http.bytesSent, leg.sentPayloadTruncated);
      noteNotStored(line.correlationId, leg.recvPayloadNotStored);
      noteNotStored(line.correlationId, leg.sentPayloadNotStored);
    }
    if (cut !== null) audit.unreadableLines.push(`${cut}, the last line`);
  }
  for (const [reason, ids] of notStoredIds) audit.notStored.set(reason, ids.size);
  return audit;
}
