import { mkdir, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { baseConfig, deadPort } from '../../test/support/backends.js';
import { gatewayStartFailure, problemLines, runCli, Workspace } from '../../test/support/gateway-process.js';

let workspace: Workspace;

beforeEach(async () => {
  workspace = await Workspace.create();
});

afterEach(async () => {
  await workspace.remove();
});

const QUICKSTART = fileURLToPath(new URL('../../examples/quickstart.yaml', import.meta.url));

/** A config that uses most sections, so a valid file exercises more than the defaults. */
function fullConfig(): Record<string, any> {
  return baseConfig(workspace, 'http://127.0.0.1:9', {
    apis: [
      {
        id: 'pets',
        name: 'Pets',
        listenPath: '/pets/',
        target: ['http://127.0.0.1:9', 'https://pets.example.com/v1'],
        retries: 2,
        detailedRecording: 'errors',
        tagHeaders: ['X-Team'],
        endpoints: [{ method: 'GET', path: '/health', doNotTrack: true }],
        timeouts: { connectMs: 100 },
      },
      { id: 'orders', name: 'Orders', listenPath: '/orders/', target: 'http://127.0.0.1:9' },
    ],
    analytics: {
      detailedRecording: 'headers',
      ignoredIps: ['10.0.0.0/8', '::1', '192.168.1.7'],
      redact: { headers: ['X-Session-Token'], queryParams: ['sig'], jsonFields: ['card_number'] },
      maxPayloadBytes: 2048,
      normaliseUrls: { patterns: ['[a-z]{3}-\\d+'] },
    },
    trafficLog: { maxFileSizeMb: 5, maxDiskSpaceMb: 100, diskCheckIntervalSec: 30, payloads: { enabled: true } },
  });
}

/** Every problem in one file: each entry is the line `validate` must print for it. */
const BROKEN_CONFIG = {
  gateway: { host: '127.0.0.1', port: 'eighty', shutdownTimeoutMs: 3_000_000_000 },
  colour: 'blue',
  apis: [
    { id: 'shop', name: 'Shop', listenPath: '/shop/', target: 'ftp://x', retry: 3, timeouts: { idleMs: 2_147_483_648 } },
    { id: 'shop', name: 'Shop again', target: 'http://127.0.0.1:9' },
  ],
  analytics: { detailedRecording: 'sometimes', ignoredIps: ['10.0.0.0/99'] },
  trafficLog: { diskCheckIntervalSec: 2_147_484 },
};

const EXPECTED_PROBLEMS: [path: string, line: RegExp][] = [
  ['colour', /^colour: unknown key$/],
  ['apis.0.retry', /^apis\.0\.retry: unknown key$/],
  ['gateway.port', /^gateway\.port: expected number, found "eighty"$/],
  ['apis.0.target', /^apis\.0\.target: expected an http:\/\/ or https:\/\/ URL, found "ftp:\/\/x"$/],
  ['analytics.detailedRecording', /^analytics\.detailedRecording: expected one of "off"\|"headers"\|"full"\|"errors", found "sometimes"$/],
  ['analytics.ignoredIps.0', /^analytics\.ignoredIps\.0: expected an IP address or CIDR block.*, found "10\.0\.0\.0\/99"$/],
  ['apis.1.id', /^apis\.1\.id: expected a unique value, found "shop" \(also apis\.0\.id\)$/],
  ['apis.1.listenPath', /^apis\.1\.listenPath: expected string, found nothing$/],
  // Node fires a timer set above 2^31-1 ms after 1 ms.
  ['gateway.shutdownTimeoutMs', /^gateway\.shutdownTimeoutMs: expected number to be <=2147483647, found 3000000000$/],
  ['apis.0.timeouts.idleMs', /^apis\.0\.timeouts\.idleMs: expected number to be <=2147483647, found 2147483648$/],
  ['trafficLog.diskCheckIntervalSec', /^trafficLog\.diskCheckIntervalSec: expected number to be <=2147483, found 2147484$/],
];

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ');
}

describe('tollgate validate', () => {
  it('accepts a valid YAML config and the same config as JSON', async () => {
    const yamlFile = await workspace.writeConfig(fullConfig());
    const jsonFile = await workspace.writeConfig(fullConfig(), 'tollgate.json');

    for (const file of [yamlFile, jsonFile]) {
      const result = await runCli(['validate', '--config', file]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${file}: valid (2 APIs)\n`);
    }
  });

  it('accepts the bundled quick start config', async () => {
    const result = await runCli(['validate', '-c', QUICKSTART]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('valid (1 API)');
  });

  it('lists every problem with its key path, what was expected and what was found', async () => {
    const file = await workspace.writeConfig(BROKEN_CONFIG);
    const result = await runCli(['validate', '--config', file]);

    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`${file}: ${EXPECTED_PROBLEMS.length} problems`);
    const lines = problemLines(result.stderr);
    for (const [path, line] of EXPECTED_PROBLEMS) {
      expect(
        lines.some((printed) => line.test(printed)),
        `a line for ${path} matching ${line} in:\n${lines.join('\n')}`,
      ).toBe(true);
    }
    expect(lines).toHaveLength(EXPECTED_PROBLEMS.length);
  });

  it('never echoes the password of a connection URL it refuses', async () => {
    const file = await workspace.writeConfig({
      analytics: { buffer: { type: 'redis', url: 'http://admin:S3cretRedisPass@redis.internal:6379' } },
      pump: { sinks: [{ type: 'postgres', url: 'postgresql+asyncpg://tollgate:S3cretPgPass@db.internal:5432/x' }] },
    });
    const result = await runCli(['validate', '--config', file]);
    expect(result.code).toBe(2);
    expect(problemLines(result.stderr)).toEqual([
      'analytics.buffer.url: expected a redis:// or rediss:// URL, found "http://admin:***@redis.internal:6379"',
      'pump.sinks.0.url: expected a postgres:// or postgresql:// URL, found "postgresql+asyncpg://tollgate:***@db.internal:5432/x"',
    ]);
    expect(result.stderr).not.toMatch(/S3cret/);
  });

  it('reports the same problems for the same config written as JSON', async () => {
    const yaml = await runCli(['validate', '--config', await workspace.writeConfig(BROKEN_CONFIG)]);
    const json = await runCli(['validate', '--config', await workspace.writeConfig(BROKEN_CONFIG, 'broken.json')]);
    expect(json.code).toBe(yaml.code);
    expect(problemLines(json.stderr).sort()).toEqual(problemLines(yaml.stderr).sort());
  });

  it('accepts every duration up to the longest a Node timer holds', async () => {
    const limitMs = 2_147_483_647;
    const timeouts = { connectMs: limitMs, responseHeadersMs: limitMs, idleMs: limitMs };
    const config = baseConfig(workspace, 'http://127.0.0.1:9', {
      gateway: { timeouts, targetCooldownMs: limitMs, shutdownTimeoutMs: limitMs, keepAliveTimeoutMs: limitMs },
      api: { timeouts },
      trafficLog: { diskCheckIntervalSec: 2_147_483 },
    });
    const result = await runCli(['validate', '--config', await workspace.writeConfig(config)]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('names a key given twice in one object, by path and line, in JSON as in YAML', async () => {
    const json = workspace.path('twice.json');
    await writeFile(json, '{\n  "gateway": {\n    "port": 8080,\n    "port": 9090\n  },\n  "apis": [{ "id": "a", "name": "A", "id": "b" }]\n}\n');
    const yaml = workspace.path('twice.yaml');
    await writeFile(yaml, 'gateway:\n  port: 8080\n  port: 9090\napis:\n  - { id: a, name: A, id: b }\n');

    const fromJson = await runCli(['validate', '--config', json]);
    expect(fromJson.code).toBe(2);
    expect(fromJson.stderr).toContain(`${json}: 2 problems`);
    expect(problemLines(fromJson.stderr)).toEqual([
      'gateway.port: expected a key only once per object, found "port" again at line 4',
      'apis.0.id: expected a key only once per object, found "id" again at line 6',
    ]);
    const fromYaml = await runCli(['validate', '--config', yaml]);
    expect(fromYaml.code).toBe(2);
    expect(problemLines(fromYaml.stderr)).toEqual([
      'gateway.port: expected a key only once per object, found "port" again at line 3',
      'apis.0.id: expected a key only once per object, found "id" again at line 5',
    ]);
  });

  it('says a missing file or a directory cannot be read', async () => {
    const missing = workspace.path('no-such.yaml');
    const absent = await runCli(['validate', '--config', missing]);
    expect(absent.code).not.toBe(0);
    expect(absent.stderr).toContain(missing);
    expect(absent.stderr).toMatch(/cannot read the file: ENOENT/);

    const directory = workspace.path('a-directory.yaml');
    await mkdir(directory);
    const notFile = await runCli(['validate', '--config', directory]);
    expect(notFile.code).not.toBe(0);
    expect(notFile.stderr).toMatch(/cannot read the file: EISDIR/);
  });

  it('says where invalid YAML or JSON is broken', async () => {
    const yamlFile = workspace.path('broken.yaml');
    await writeFile(yamlFile, 'gateway:\n  port: 8080\napis: [\n  { id: a\n');
    const yaml = await runCli(['validate', '--config', yamlFile]);
    expect(yaml.code).not.toBe(0);
    expect(yaml.stderr).toContain(yamlFile);
    expect(yaml.stderr).toMatch(/not valid YAML: .*line \d+/);

    const jsonFile = workspace.path('broken.json');
    await writeFile(jsonFile, '{"gateway": {"port": 8080},');
    const json = await runCli(['validate', '--config', jsonFile]);
    expect(json.code).not.toBe(0);
    expect(json.stderr).toMatch(/not valid JSON: /);
  });

  it('fails without --config', async () => {
    const result = await runCli(['validate']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/--config/);
  });
});

describe('tollgate --help', () => {
  it('documents the gateway and validate commands and both environment variables', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(0);
    const help = oneLine(result.stdout);
    expect(help).toMatch(/ gateway \[options\] +Start the gateway/);
    expect(help).toMatch(/ validate \[options\] +Check a configuration file/);
    expect(help).toContain('TOLLGATE_TRAFFIC_LOG_OUTPUT (none|file|stdout)');
    expect(help).toContain('TOLLGATE_TRAFFIC_LOG_PAYLOAD (true|false)');
  });

  it('documents --config and the environment variables for gateway, and --config for validate', async () => {
    const gateway = await runCli(['gateway', '--help']);
    expect(gateway.code).toBe(0);
    const gatewayHelp = oneLine(gateway.stdout);
    expect(gatewayHelp).toContain('Usage: tollgate gateway');
    expect(gatewayHelp).toMatch(/-c, --config <file> +configuration file/);
    expect(gatewayHelp).toContain('TOLLGATE_TRAFFIC_LOG_OUTPUT (none|file|stdout)');
    expect(gatewayHelp).toContain('TOLLGATE_TRAFFIC_LOG_PAYLOAD (true|false)');

    const validate = await runCli(['validate', '--help']);
    expect(validate.code).toBe(0);
    expect(oneLine(validate.stdout)).toMatch(/Usage: tollgate validate .*-c, --config <file>/);
  });
});

describe('tollgate gateway with a bad config', () => {
  it('fails with the same problems as validate and never starts', async () => {
    const file = await workspace.writeConfig(BROKEN_CONFIG);
    const validate = await runCli(['validate', '--config', file]);

    const message = await gatewayStartFailure(file);
    expect(message).toMatch(/exited with code [1-9]\d* before listening/);
    expect(problemLines(message)).toEqual(problemLines(validate.stderr));
    expect(message).not.toContain('listening on');
  });

  it('opens neither its port nor its log directory', async () => {
    const port = await deadPort();
    const config = baseConfig(workspace, 'ftp://127.0.0.1:9', { gateway: { port } });
    const message = await gatewayStartFailure(await workspace.writeConfig(config));
    expect(problemLines(message)).toEqual(['apis.0.target: expected an http:// or https:// URL, found "ftp://127.0.0.1:9"']);

    await expect(request(`http://127.0.0.1:${port}/api/`)).rejects.toThrow(/ECONNREFUSED/);
    await expect(stat(workspace.logDir)).rejects.toThrow(/ENOENT/);
  });

  it('fails on a JSON key given twice as validate does', async () => {
    const file = workspace.path('twice.json');
    await writeFile(file, '{\n  "gateway": {"port": 0},\n  "gateway": {"port": 0}\n}\n');
    const message = await gatewayStartFailure(file);
    expect(message).toMatch(/exited with code 2 before listening/);
    expect(problemLines(message)).toEqual(['gateway: expected a key only once per object, found "gateway" again at line 3']);
  });

  it('fails on an unreadable file as validate does', async () => {
    const message = await gatewayStartFailure(workspace.path('missing.yaml'));
    expect(message).toMatch(/exited with code [1-9]\d* before listening/);
    expect(message).toMatch(/cannot read the file: ENOENT/);
  });
});
