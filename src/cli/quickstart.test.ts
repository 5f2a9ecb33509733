import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { BIN, eventually, Workspace } from '../../test/support/gateway-process.js';

let workspace: Workspace;
beforeEach(async () => (workspace = await Workspace.create()));
afterEach(() => workspace.remove());

it('npm start: a request through the quick start gateway arrives, as an analytics record, in the file the pump writes, with no server to install', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [BIN, 'quickstart'], { cwd: workspace.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    await eventually(async () => (output.includes('Try:') ? true : undefined), 20_000, `the quick start to start (it said: ${output})`);
    const response = await fetch('http://127.0.0.1:8080/petstore/pets/1', { headers: { 'X-Api-Key': 'demo-key' } });
    expect(response.status).toBe(200);
    const id = response.headers.get('x-correlation-id');
    const file = workspace.path('data', 'records', 'records.jsonl');
    const record = await eventually(
      async () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((found) => found.id === id) : undefined),
      15_000,
      'the record in data/records/records.jsonl',
    );
    expect(record).toMatchObject({ apiId: 'petstore', status: 200, path: '/petstore/pets/1' });
    expect(record.apiKeyHash).toMatch(/^[0-9a-f]{64}$/);
    const metrics = await (await fetch('http://127.0.0.1:8083/metrics')).text();
    expect(metrics).toMatch(/tollgate_pump_/);
  } finally {
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    const [code] = await exited;
    expect(code, output).toBe(0);
  }
});
