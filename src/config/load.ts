import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { environmentProblems } from './environment-checks.js';
import { configSchema, TRAFFIC_LOG_OUTPUTS, type Config, type TrafficLogOutput } from './schema.js';

/** Thrown for any problem with the configuration; `problems` holds one line per problem. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The password of anything shaped like `scheme://user:password@host`, parseable URL or not. */
const URL_PASSWORD = /(\/\/[^/:@\s]*):[^@/\s]*@/g;

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  // A value that failed validation is echoed back: a connection URL's password must not be.
  const text = JSON.stringify(value).replace(URL_PASSWORD, '$1:***@');
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let current = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function formatIssue(issue: z.core.$ZodIssue, input: unknown): string[] {
  const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${issue.path.length > 0 ? `${where}.` : ''}${key}: unknown key`);
  }
  if (issue.code === 'invalid_key') {
    // A record's key: the problem is the key itself, named by the issue's inner ones.
    const expected = issue.issues.map((inner) => inner.message).join('; ');
    return [`${where}: ${expected}, found the key ${describeValue(issue.path.at(-1))}`];
  }
  const found = describeValue(valueAt(input, issue.path));
  // A discriminated union (the sink types) names the values it knows.
  if (issue.code === 'invalid_union' && 'options' in issue && Array.isArray(issue.options)) {
    return [`${where}: expected one of ${issue.options.map((option: unknown) => JSON.stringify(option)).join('|')}, found ${found}`];
  }
  const expected = issue.message.replace(/^(Invalid \w+|Too big|Too small): /, '').replace(/, received \w+$/, '');
  return [`${where}: ${expected}, found ${found}`];
}

/** Validates an already parsed document; every problem is reported, not just the first. */
export function parseConfig(input: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(input ?? {});
  const problems = result.success ? [] : result.error.issues.flatMap((issue) => formatIssue(issue, input));
  problems.push(...duplicates(input));
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);
  return result.data;
}

/**
 * Values that must be unique in a list: API ids and listen paths (`/a` and `/a/` are the same),
 * sink names (a sink without one is named by its type). Checked on the raw input, so it is
 * reported with the rest.
 */
function duplicates(input: unknown): string[] {
  const checks: [list: string[], key: string, valueOf: (item: unknown) => unknown, same: (value: string) => string][] = [
    [['apis'], 'id', (api) => valueAt(api, ['id']), (id) => id],
    [['apis'], 'listenPath', (api) => valueAt(api, ['listenPath']), (path) => path.replace(/\/+$/, '')],
    [['pump', 'sinks'], 'name', (sink) => valueAt(sink, ['name']) ?? valueAt(sink, ['type']), (sinkName) => sinkName],
  ];
  const problems: string[] = [];
  for (const [list, key, valueOf, same] of checks) {
    const items = valueAt(input, list);
    if (!Array.isArray(items)) continue;
    const first = new Map<string, number>();
    const where = list.join('.');
    items.forEach((item: unknown, index) => {
      const value = valueOf(item);
      if (typeof value !== 'string') return;
      const earlier = first.get(same(value));
      if (earlier === undefined) first.set(same(value), index);
      else problems.push(`${where}.${index}.${key}: expected a unique value, found ${describeValue(value)} (also ${where}.${earlier}.${key})`);
    });
  }
  return problems;
}

export async function readConfigFile(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read the file: ${(error as Error).message}`]);
  }
  return parseConfig(parseText(text, file), file);
}

/**
 * YAML, or JSON by the .json extension: the yaml parser reads JSON with its JSON schema, so both
 * reject a key given twice in one object (JSON.parse would keep the last).
 */
function parseText(text: string, file: string): unknown {
  const json = extname(file) === '.json';
  const document = parseDocument(text, { schema: json ? 'json' : 'core' });
  const syntaxError = document.errors.find((error) => error.code !== 'DUPLICATE_KEY');
  if (syntaxError !== undefined) throw new ConfigError(file, [`not valid ${json ? 'JSON' : 'YAML'}: ${syntaxError.message}`]);
  if (document.errors.length > 0) throw new ConfigError(file, document.errors.map((error) => duplicateKeyProblem(document.contents, error)));
  return document.toJS();
}

function duplicateKeyProblem(root: unknown, error: YAMLError): string {
  const path = keyPathAt(root, error.pos[0]) ?? ['(unknown key)'];
  return `${path.join('.')}: expected a key only once per object, found ${describeValue(path.at(-1))} again at line ${error.linePos?.[0].line}`;
}

/** The key path of the map key that starts at `offset`. */
function keyPathAt(node: unknown, offset: number, path: string[] = []): string[] | undefined {
  const entries: [key: unknown, value: unknown][] = isMap(node)
    ? node.items.map((pair) => [pair.key, pair.value])
    : isSeq(node)
      ? node.items.map((item, index) => [index, item])
      : [];
  for (const [key, value] of entries) {
    const name = String(isScalar(key) ? key.value : key);
    if (isScalar(key) && key.range?.[0] === offset) return [...path, name];
    const found = keyPathAt(value, offset, [...path, name]);
    if (found !== undefined) return found;
  }
  return undefined;
}

function envChoice<T extends string>(env: NodeJS.ProcessEnv, variable: string, allowed: readonly T[], problems: string[]): T | undefined {
  const value = env[variable];
  if (value === undefined || value === '') return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  problems.push(`${variable}: expected one of ${allowed.join(', ')}, found ${describeValue(value)}`);
  return undefined;
}

/** Start-up overrides from the environment win over the file. */
export function applyEnvironment(config: Config, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const output = envChoice<TrafficLogOutput>(env, 'TOLLGATE_TRAFFIC_LOG_OUTPUT', TRAFFIC_LOG_OUTPUTS, problems);
  const payloads = envChoice(env, 'TOLLGATE_TRAFFIC_LOG_PAYLOAD', ['true', 'false'] as const, problems);
  if (problems.length > 0) throw new ConfigError('environment', problems);
  if (output === undefined && payloads === undefined) return config;
  return {
    ...config,
    trafficLog: {
      ...config.trafficLog,
      output: output ?? config.trafficLog.output,
      payloads: {
        ...config.trafficLog.payloads,
        enabled: payloads === undefined ? config.trafficLog.payloads.enabled : payloads === 'true',
      },
    },
  };
}

/** The config start-up would run with: the file, its environment overrides, and what it needs from the machine. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const config = applyEnvironment(await readConfigFile(file), env);
  const problems = environmentProblems(config);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return config;
}
