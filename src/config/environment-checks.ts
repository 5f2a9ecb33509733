import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { payloadStorageOn, type Config } from './schema.js';

/**
 * What start-up needs from the machine beyond a valid config: directories it will write, files it
 * will read. Nothing is created or changed. One line per problem, as a ConfigError lists them.
 */
export function environmentProblems(config: Config): string[] {
  const { trafficLog, gateway, analytics } = config;
  return [
    ...(analytics.buffer.type === 'none' ? [] : writableDirectoryProblems('analytics.buffer.directory', analytics.buffer.directory)),
    ...(trafficLog.output === 'file' ? writableDirectoryProblems('trafficLog.directory', trafficLog.directory) : []),
    ...(payloadStorageOn(trafficLog) ? writableDirectoryProblems('trafficLog.payloads.directory', trafficLog.payloads.directory) : []),
    ...(gateway.tls === undefined ? [] : tlsProblems(gateway.tls)),
  ];
}

/** The directory, or the nearest ancestor that exists (where it would be created), must be a writable directory. */
function writableDirectoryProblems(key: string, path: string): string[] {
  const problem = (why: string): string[] => [`${key}: expected a writable directory, found ${JSON.stringify(path)} (${why})`];
  for (let candidate = resolve(path); ; candidate = dirname(candidate)) {
    try {
      if (!statSync(candidate).isDirectory()) return problem(`${candidate} is not a directory`);
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      return problem((error as Error).message);
    }
    try {
      accessSync(candidate, constants.W_OK | constants.X_OK);
      return [];
    } catch {
      return problem(`${candidate} is not writable`);
    }
  }
}

function tlsProblems(tls: { cert: string; key: string }): string[] {
  const problems: string[] = [];
  const read = <T>(key: string, file: string, expected: string, parse: (pem: Buffer) => T): T | undefined => {
    let pem: Buffer;
    try {
      pem = readFileSync(file);
    } catch (error) {
      problems.push(`gateway.tls.${key}: expected a readable file, found ${JSON.stringify(file)} (${(error as Error).message})`);
      return undefined;
    }
    try {
      return parse(pem);
    } catch (error) {
      problems.push(`gateway.tls.${key}: expected ${expected}, found ${JSON.stringify(file)} (${(error as Error).message})`);
      return undefined;
    }
  };
  const certificate = read('cert', tls.cert, 'a PEM certificate', pemCertificate);
  const privateKey = read('key', tls.key, 'a PEM private key', (pem) => createPrivateKey(pem));
  if (certificate !== undefined && privateKey !== undefined && !certificate.checkPrivateKey(privateKey)) {
    problems.push(`gateway.tls.key: expected the private key of ${JSON.stringify(tls.cert)}, found ${JSON.stringify(tls.key)} (it does not match the certificate)`);
  }
  return problems;
}

/** X509Certificate also reads DER, which the TLS server does not. */
function pemCertificate(pem: Buffer): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no "-----BEGIN CERTIFICATE-----" line');
  return new X509Certificate(pem);
}
