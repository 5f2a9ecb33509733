import { X509Certificate } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { baseConfig } from '../../test/support/backends.js';
import { gatewayStartFailure, problemLines, runCli, Workspace } from '../../test/support/gateway-process.js';
import { useMounts } from '../../test/support/mounts.js';

let workspace: Workspace;

beforeEach(async () => {
  workspace = await Workspace.create();
});

afterEach(async () => {
  await workspace.remove();
});

const mounts = useMounts();

function config(overrides: Record<string, any>): Record<string, any> {
  return baseConfig(workspace, 'http://127.0.0.1:9', overrides);
}

async function validate(configuration: Record<string, any>, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; problems: string[] }> {
  const result = await runCli(['validate', '--config', await workspace.writeConfig(configuration)], env);
  return { code: result.code, problems: problemLines(result.stderr) };
}

/** A problem line without its trailing "(why)", which for a bad key is OpenSSL's wording. */
function withoutReason(problem: string): string {
  expect(problem).toMatch(/ \(.+\)$/);
  return problem.replace(/ \(.+\)$/, '');
}

/** A plain file where the gateway would need a directory. */
async function fileInTheWay(): Promise<string> {
  const file = workspace.path('in-the-way');
  await writeFile(file, 'not a directory');
  return file;
}

describe('log and payload directories', () => {
  it('refuses a traffic log and payload directory below a file, naming key, path and why', async () => {
    const blocker = await fileInTheWay();
    const { code, problems } = await validate(
      config({ trafficLog: { directory: `${blocker}/logs`, payloads: { enabled: true, directory: `${blocker}/payloads/new` } } }),
    );
    expect(code).toBe(2);
    expect(problems).toEqual([
      `trafficLog.directory: expected a writable directory, found "${blocker}/logs" (${blocker} is not a directory)`,
      `trafficLog.payloads.directory: expected a writable directory, found "${blocker}/payloads/new" (${blocker} is not a directory)`,
    ]);
  });

  it('refuses an analytics spool directory below a file, and ignores it when there is no buffer', async () => {
    const blocker = await fileInTheWay();
    const spooled = await validate(config({ analytics: { buffer: { type: 'embedded', directory: `${blocker}/spool` } } }));
    expect(spooled.code).toBe(2);
    expect(spooled.problems).toEqual([`analytics.buffer.directory: expected a writable directory, found "${blocker}/spool" (${blocker} is not a directory)`]);
    expect((await validate(config({ analytics: { buffer: { type: 'none', directory: `${blocker}/spool` } } }))).code).toBe(0);
  });

  it('accepts directories that do not exist yet below a writable one, and creates nothing', async () => {
    const { code, problems } = await validate(
      config({ trafficLog: { directory: workspace.path('a', 'b', 'logs'), payloads: { enabled: true, directory: workspace.path('c', 'payloads') } } }),
    );
    expect(problems).toEqual([]);
    expect(code).toBe(0);
    expect(await readdir(workspace.dir)).toEqual(['tollgate.yaml']);
  });

  it('checks a directory only when it will be written, after the environment overrides', async () => {
    const blocker = await fileInTheWay();
    const unusable = { directory: `${blocker}/logs`, payloads: { enabled: true, directory: `${blocker}/payloads` } };
    const payloadProblem = `trafficLog.payloads.directory: expected a writable directory, found "${blocker}/payloads" (${blocker} is not a directory)`;

    expect(await validate(config({ trafficLog: { ...unusable, output: 'none' } }))).toEqual({ code: 0, problems: [] });
    expect(await validate(config({ trafficLog: { ...unusable, output: 'stdout' } }))).toEqual({ code: 2, problems: [payloadProblem] });
    expect(await validate(config({ trafficLog: unusable }), { TOLLGATE_TRAFFIC_LOG_OUTPUT: 'none' })).toEqual({ code: 0, problems: [] });
    expect(await validate(config({ trafficLog: { ...unusable, output: 'stdout' } }), { TOLLGATE_TRAFFIC_LOG_PAYLOAD: 'false' })).toEqual({
      code: 0,
      problems: [],
    });
  });

  it('refuses a directory below a read-only one', async () => {
    const readOnly = workspace.path('read-only');
    // A read-only file system: permission bits would not stop root, EROFS stops everyone.
    mounts.tmpfs(readOnly, 'ro,size=1m');
    const { code, problems } = await validate(config({ trafficLog: { directory: `${readOnly}/logs` } }));
    expect(code).toBe(2);
    expect(problems).toEqual([`trafficLog.directory: expected a writable directory, found "${readOnly}/logs" (${readOnly} is not writable)`]);
  });
});

describe('TLS certificate and key', () => {
  it('accepts a certificate with its own key', async () => {
    const tls = await workspace.selfSignedCertificate();
    expect(await validate(config({ gateway: { tls } }))).toEqual({ code: 0, problems: [] });
  });

  it('refuses files that are not a PEM certificate and a PEM private key, saying why', async () => {
    const { cert, key } = await workspace.selfSignedCertificate();
    const der = workspace.path('cert.der');
    await writeFile(der, new X509Certificate(await readFile(cert)).raw);

    // A key where the certificate belongs, and a certificate where the key belongs.
    const swapped = await validate(config({ gateway: { tls: { cert: key, key: cert } } }));
    expect(swapped.code).toBe(2);
    expect(swapped.problems.map(withoutReason)).toEqual([
      `gateway.tls.cert: expected a PEM certificate, found "${key}"`,
      `gateway.tls.key: expected a PEM private key, found "${cert}"`,
    ]);
    // The TLS server reads PEM only.
    const binary = await validate(config({ gateway: { tls: { cert: der, key } } }));
    expect(binary.problems).toEqual([`gateway.tls.cert: expected a PEM certificate, found "${der}" (no "-----BEGIN CERTIFICATE-----" line)`]);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const first = await workspace.selfSignedCertificate('first-');
    const second = await workspace.selfSignedCertificate('second-');
    const { code, problems } = await validate(config({ gateway: { tls: { cert: first.cert, key: second.key } } }));
    expect(code).toBe(2);
    expect(problems).toEqual([
      `gateway.tls.key: expected the private key of "${first.cert}", found "${second.key}" (it does not match the certificate)`,
    ]);
  });

  it('says which file cannot be read', async () => {
    const { cert } = await workspace.selfSignedCertificate();
    const missing = workspace.path('missing-key.pem');
    const { code, problems } = await validate(config({ gateway: { tls: { cert, key: missing } } }));
    expect(code).toBe(2);
    expect(problems).toEqual([`gateway.tls.key: expected a readable file, found "${missing}" (ENOENT: no such file or directory, open '${missing}')`]);
  });
});

describe('tollgate gateway', () => {
  it('stops before listening with the same problems as validate, and creates nothing', async () => {
    const blocker = await fileInTheWay();
    const first = await workspace.selfSignedCertificate('first-');
    const second = await workspace.selfSignedCertificate('second-');
    const file = await workspace.writeConfig(
      config({
        gateway: { tls: { cert: first.cert, key: second.key } },
        trafficLog: { directory: `${blocker}/logs`, payloads: { enabled: true, directory: workspace.path('payloads', 'new') } },
      }),
    );
    const validated = await runCli(['validate', '--config', file]);
    expect(problemLines(validated.stderr)).toHaveLength(2);

    const message = await gatewayStartFailure(file);
    expect(message).toMatch(/exited with code 2 before listening/);
    expect(problemLines(message)).toEqual(problemLines(validated.stderr));
    expect((await readdir(workspace.dir)).sort()).toEqual(['first-cert.pem', 'first-key.pem', 'in-the-way', 'second-cert.pem', 'second-key.pem', 'tollgate.yaml']);
  });
});
