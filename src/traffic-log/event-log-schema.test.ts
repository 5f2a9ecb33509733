import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { checkTrafficLines, checkTrafficLogFiles } from '../../test/support/event-log-contract.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import type { LogLine } from '../../test/support/gateway-process.js';

const fixture = useGatewayFixture({ demo: true });

/** Runs a POST through the gateway recording everything, plus a GET no API listens on; returns the log lines. */
async function realLines(): Promise<LogLine[]> {
  const config = baseConfig(fixture.workspace, fixture.demo.url, { api: { detailedRecording: 'full' }, trafficLog: { payloads: { enabled: true } } });
  const gw = await fixture.start(config);
  const echo = await request(`${gw.url}/api/echo`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
  expect(await echo.body.text()).toBe('{"a":1}');
  const unrouted = await request(`${gw.url}/nowhere`);
  await unrouted.body.text();
  expect(unrouted.statusCode).toBe(404);
  expect(await gw.stop()).toBe(0);
  const { lines, problems } = await checkTrafficLogFiles(fixture.workspace.logDir);
  expect(problems).toEqual([]);
  return lines as LogLine[];
}

function lineOf(lines: LogLine[], body: 'transactionSummary' | 'transactionElement' | 'circuitPath'): LogLine {
  return structuredClone(lines.find((line) => line[body] !== undefined)) as LogLine;
}

function problemsOf(line: unknown): string[] {
  return checkTrafficLines(`${JSON.stringify(line)}\n`, 'mutated').problems;
}

const TRACE_LINE = {
  timestamp: 1_700_000_000_000,
  correlationId: '000000000000000000000000',
  processInfo: { hostname: 'h', domainId: 'd', groupId: 'g', groupName: 'g', serviceId: 's', serviceName: 's', version: '0.1.0' },
  trace: { level: 'INFO', thread: 'main', data: 'listening on http://127.0.0.1:8080' },
};

describe('the open traffic event log schema', () => {
  it('accepts every line of a real run: summary, elements and circuit path of a proxied POST and of an unrouted GET', async () => {
    const lines = await realLines();
    expect(lines.filter((line) => line.transactionSummary !== undefined)).toHaveLength(2);
    expect(lines.filter((line) => line.transactionElement !== undefined)).toHaveLength(3);
    expect(lines.filter((line) => line.circuitPath !== undefined)).toHaveLength(2);
    expect(lines.filter((line) => line.trace !== undefined).map((line) => line.trace?.level)).toEqual(['INFO', 'INFO', 'INFO']);
    expect(lines).toHaveLength(10);
  });

  it('rejects real lines made to drift, naming the problem: no correlationId, a bad finalStatus, an unknown summary field, two record bodies', async () => {
    const lines = await realLines();

    const withoutId = lineOf(lines, 'transactionSummary') as Partial<LogLine>;
    delete withoutId.correlationId;
    expect(problemsOf(withoutId)).toEqual(['mutated line 1: / misses the required property "correlationId"']);

    const badStatus = lineOf(lines, 'transactionElement');
    badStatus.transactionElement!.finalStatus = 'Ok';
    expect(problemsOf(badStatus)).toEqual(['mutated line 1: /transactionElement/finalStatus must be one of "Pass", "Fail", "Error", null, found "Ok"']);

    const extraField = lineOf(lines, 'transactionSummary');
    extraField.transactionSummary!.colour = 'blue';
    expect(problemsOf(extraField)).toEqual(['mutated line 1: /transactionSummary has the unknown property "colour"']);

    const twoBodies = lineOf(lines, 'transactionSummary');
    twoBodies.circuitPath = lineOf(lines, 'circuitPath').circuitPath!;
    expect(problemsOf(twoBodies)).toEqual([
      'mutated line 1: / must have exactly one of transactionSummary, transactionElement, circuitPath, trace, found transactionSummary and circuitPath',
    ]);
  });

  it('accepts a known reason a body was not stored, or null, but no other reason', async () => {
    const line = lineOf(await realLines(), 'transactionElement');
    const protocolInfo = line.transactionElement!.protocolInfo;
    protocolInfo.recvPayloadNotStored = 'memory-limit';
    protocolInfo.sentPayloadNotStored = null;
    expect(problemsOf(line)).toEqual([]);
    protocolInfo.sentPayloadNotStored = 'over-quota';
    expect(problemsOf(line)).toEqual([expect.stringMatching(/^mutated line 1: \/transactionElement\/protocolInfo\/sentPayloadNotStored must be (equal to )?one of/)]);
  });

  it('accepts a trace line not tied to a transaction and rejects a level it does not know', () => {
    expect(problemsOf(TRACE_LINE)).toEqual([]);
    expect(problemsOf({ ...TRACE_LINE, trace: { ...TRACE_LINE.trace, level: 'WARN' } })).toEqual([
      'mutated line 1: /trace/level must be one of "FATAL", "ERROR", "INFO", "DEBUG", "DATA", found "WARN"',
    ]);
  });

  it('checks every traffic log file in a directory, rolled ones too, naming file and line; other files are not its business', async () => {
    const directory = fixture.workspace.path('elsewhere');
    await mkdir(directory);
    const valid = `${JSON.stringify(TRACE_LINE)}\n`;
    await writeFile(join(directory, 'test_gw_traffic.log'), valid);
    await writeFile(join(directory, 'test_gw_traffic_2024-01-01-1.log'), `${valid}{"from":"an earlier run"}\n${valid}{"cut":`);
    await writeFile(join(directory, 'notes.log'), 'not a traffic log\n');

    const { lines, problems } = await checkTrafficLogFiles(directory);
    expect(lines).toHaveLength(4);
    const rolled = join(directory, 'test_gw_traffic_2024-01-01-1.log');
    expect(problems).toEqual([
      `${rolled} line 2: / must have exactly one of transactionSummary, transactionElement, circuitPath, trace, found none`,
      `${rolled} line 2: / misses the required property "timestamp"`,
      `${rolled} line 2: / misses the required property "correlationId"`,
      `${rolled} line 2: / misses the required property "processInfo"`,
      `${rolled} line 2: / has the unknown property "from"`,
    ]);
  });
});
