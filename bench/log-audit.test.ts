import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditTrafficLog, checkLink } from './log-audit.js';

const sizes = (files: Record<string, number>) => (path: string) => files[path];

describe('checkLink', () => {
  it('passes a file that holds the recorded bytes and a packed range inside its file', () => {
    const size = sizes({ '/p/a-0-received': 1024, '/p/x.bin': 5000 });
    expect(checkLink('file:///p/a-0-received', 1024, size)).toBeNull();
    expect(checkLink('file:///p/x.bin#offset=3976&length=1024', 1024, size)).toBeNull();
  });

  it('names a missing file, a file of another size, a range past the end and a range of another length', () => {
    const size = sizes({ '/p/a-0-received': 1000, '/p/x.bin': 5000 });
    expect(checkLink('file:///p/gone', 1024, size)).toBe('file:///p/gone: no such file');
    expect(checkLink('file:///p/a-0-received', 1024, size)).toBe('file:///p/a-0-received: 1000 bytes, recorded 1024');
    expect(checkLink('file:///p/x.bin#offset=4000&length=1024', 1024, size)).toBe(
      'file:///p/x.bin#offset=4000&length=1024: the range ends at 5024, the file at 5000',
    );
    expect(checkLink('file:///p/x.bin#offset=0&length=10', 1024, size)).toBe('file:///p/x.bin#offset=0&length=10: length 10, recorded 1024');
  });

  it('checks only the file and the range of a body cut at the limit (no byte count to compare)', () => {
    const size = sizes({ '/p/a-0-received': 1000, '/p/x.bin': 5000 });
    expect(checkLink('file:///p/a-0-received', null, size)).toBeNull();
    expect(checkLink('file:///p/x.bin#offset=4990&length=20', null, size)).toMatch(/the range ends at 5010/);
  });
});

describe('auditTrafficLog', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-log-audit-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const summary = (id: string) => JSON.stringify({ correlationId: id, transactionSummary: {} });
  const element = (id: string, received: string | null, sent: string | null, bytes: number, notStored: string | null = null) =>
    JSON.stringify({
      correlationId: id,
      transactionElement: {
        protocolInfo: {
          recvPayload: received,
          sentPayload: sent,
          recvPayloadTruncated: false,
          sentPayloadTruncated: false,
          recvPayloadNotStored: notStored,
          sentPayloadNotStored: notStored,
          http: { bytesReceived: bytes, bytesSent: bytes },
        },
      },
    });
  const trace = (data: string) => JSON.stringify({ correlationId: '0'.repeat(24), trace: { level: 'INFO', thread: 'main', data } });

  it('collects the logged ids, bodies not stored per transaction, bad links, traces and cut lines from every log file', async () => {
    const whole = join(dir, 'whole');
    const short = join(dir, 'short');
    await writeFile(whole, 'x'.repeat(10));
    await writeFile(short, 'x'.repeat(4));
    const link = (path: string) => pathToFileURL(path).href;
    await mkdir(join(dir, 'logs'));
    await writeFile(
      join(dir, 'logs', 'g_i_traffic_2026-11-22-1.log'),
      [trace('gateway i started (pid 1), serving http://127.0.0.1:1'), summary('a'), element('a', link(whole), link(short), 10), ''].join('\n'),
    );
    await writeFile(
      join(dir, 'logs', 'g_i_traffic.log'),
      [
        summary('b'),
        element('b', null, null, 10, 'queue-full'),
        element('b', null, null, 10, 'queue-full'),
        trace('a write blocked the gateway'),
        '{"correlationId":"c","transactionSumm',
      ].join('\n'),
    );
    await writeFile(join(dir, 'logs', 'notes.txt'), summary('z'));

    const audit = await auditTrafficLog(join(dir, 'logs'));
    expect([...audit.logged].sort()).toEqual(['a', 'b']);
    expect(Object.fromEntries(audit.notStored)).toEqual({ 'queue-full': 1 });
    expect(audit.links).toBe(2);
    expect(audit.badLinks).toEqual([`${link(short)}: 4 bytes, recorded 10`]);
    expect(audit.unreadableLines).toEqual([`${join(dir, 'logs', 'g_i_traffic.log')}:5: 37 bytes, the last line`]);
    expect(audit.traces).toEqual(['a write blocked the gateway']);
  });
});
