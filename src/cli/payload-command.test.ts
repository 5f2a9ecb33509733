import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { useGatewayFixture } from '../../test/support/fixture.js';
import { byTransaction, runCli } from '../../test/support/gateway-process.js';
import { parsePayloadLink } from './payload-command.js';

const fixture = useGatewayFixture({ demo: true });

describe('tollgate payload', () => {
  it('prints a body of the reference layout, the whole file, byte for byte and redacted', async () => {
    // A space in the directory: the link percent-encodes it, and the command decodes it.
    const directory = fixture.workspace.path('pay loads');
    const gw = await fixture.start(baseConfig(fixture.workspace, fixture.demo.url, { trafficLog: { payloads: { enabled: true, directory } } }));
    const sent = '{ "user": "Zoë",\t"password":"hunter2" ,"n":7.0E0 }';
    const response = await request(`${gw.url}/api/echo`, { method: 'POST', body: sent, headers: { 'content-type': 'application/json' } });
    expect(await response.body.text()).toBe(sent);
    await gw.stop();

    const legs = byTransaction(await fixture.workspace.logLines()).get(response.headers['x-correlation-id'] as string)!.legs;
    const links = [legs[0]!.protocolInfo.recvPayload, legs[1]!.protocolInfo.sentPayload, legs[1]!.protocolInfo.recvPayload, legs[0]!.protocolInfo.sentPayload];
    const redacted = Buffer.from(sent.replace('"hunter2"', '"[REDACTED]"'));
    for (const link of links) {
      expect(link).toMatch(/^file:\/\/\/.+\/pay%20loads\/.+-[01]-(sent|received)$/);
      const printed = await runCli(['payload', link]);
      expect(printed).toMatchObject({ code: 0, stderr: '' });
      expect(printed.stdoutBytes).toEqual(redacted);
    }
  });

  it('prints the byte range of a packed link, and nothing around it', async () => {
    const file = fixture.workspace.path('test_gw_payloads_2026-01-01-1.bin');
    await writeFile(file, Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0xc3, 0xa9, 0x7b]));
    const printed = await runCli(['payload', `${pathToFileURL(file).href}#offset=1&length=5`]);
    expect(printed).toMatchObject({ code: 0, stderr: '' });
    expect(printed.stdoutBytes).toEqual(Buffer.from([0xff, 0x0d, 0x0a, 0xc3, 0xa9]));
    const empty = await runCli(['payload', `${pathToFileURL(file).href}#offset=7&length=0`]);
    expect(empty).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('exits 1 naming the problem, printing nothing, for a link it cannot follow', async () => {
    const file = fixture.workspace.path('test_gw_payloads_2026-01-01-1.bin');
    await writeFile(file, 'ten bytes!');
    const link = pathToFileURL(file).href;
    const cases: [string, string][] = [
      ['http://127.0.0.1/payloads/x', 'expected a file:// link, found "http://127.0.0.1/payloads/x"'],
      [file, `expected a file:// link, found "${file}"`],
      [`${link}?offset=1`, `expected a file:// link without a query, found "${link}?offset=1"`],
      [`${link}#offset=1`, 'expected the link to end in #offset=N&length=M (whole numbers), found "#offset=1"'],
      [`${link}#offset=-1&length=2`, 'expected the link to end in #offset=N&length=M (whole numbers), found "#offset=-1&length=2"'],
      [`${link}#length=2&offset=1`, 'expected the link to end in #offset=N&length=M (whole numbers), found "#length=2&offset=1"'],
      [`${link}#offset=4&length=7`, `${file}: offset 4 + length 7 runs past the end of the file (10 bytes): it was cut or replaced`],
      [`${link}.gone`, `${file}.gone: no such file (the disk quota may have deleted it)`],
      [pathToFileURL(fixture.workspace.dir).href, `${fixture.workspace.dir}: not a file`],
    ];
    const results = await Promise.all(cases.map(([given]) => runCli(['payload', given])));
    cases.forEach(([given, problem], i) => expect(results[i], given).toMatchObject({ code: 1, stdout: '', stderr: `tollgate: ${problem}\n` }));
  });
});

describe('parsePayloadLink', () => {
  it('reads the path and, for a packed link, the range', () => {
    expect(parsePayloadLink('file:///var/log/p%20q/a-0-sent')).toEqual({ path: '/var/log/p q/a-0-sent', range: null });
    expect(parsePayloadLink('file:///p/g_i_payloads_2026-11-21-3.bin#offset=1048576&length=0')).toEqual({
      path: '/p/g_i_payloads_2026-11-21-3.bin',
      range: { offset: 1_048_576, length: 0 },
    });
  });
});
