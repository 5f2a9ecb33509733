import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';

const SCHEMA_FILE = fileURLToPath(new URL('../../schemas/open-traffic-event-log.schema.json', import.meta.url));

/** Current and rolled traffic log files: `<group>_<instance>_traffic.log`, `..._traffic_<day>-<n>.log`. */
const TRAFFIC_LOG_NAME = /_traffic.*\.log$/;

// strictRequired would refuse the oneOf branches, which require properties defined beside them.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, verbose: true });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));

export interface CheckedLines {
  /** Every complete line, parsed (also the invalid ones, when they are JSON). */
  lines: unknown[];
  /** One message per problem: `<source> line <n>: <JSON pointer> <problem>`. */
  problems: string[];
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function describeError(error: ErrorObject): string {
  const at = error.instancePath === '' ? '/' : error.instancePath;
  switch (error.keyword) {
    case 'required':
      return `${at} misses the required property "${error.params.missingProperty}"`;
    case 'additionalProperties':
      return `${at} has the unknown property "${error.params.additionalProperty}"`;
    case 'enum':
      return `${at} must be one of ${(error.params.allowedValues as unknown[]).map(shown).join(', ')}, found ${shown(error.data)}`;
    case 'oneOf': {
      // The schema's only oneOf: each branch requires one record body.
      const bodies = (error.schema as { required: string[] }[]).map((branch) => branch.required[0] as string);
      const found = bodies.filter((body) => Object.hasOwn(error.data as object, body));
      return `${at} must have exactly one of ${bodies.join(', ')}, found ${found.length === 0 ? 'none' : found.join(' and ')}`;
    }
    default:
      return `${at} ${error.message}${typeof error.data === 'object' && error.data !== null ? '' : `, found ${shown(error.data)}`}`;
  }
}

/** Ajv also reports why each branch of a failed oneOf failed; the oneOf error alone says it. */
function withoutBranchErrors(errors: ErrorObject[]): ErrorObject[] {
  return errors.filter((error) => !error.schemaPath.startsWith('#/oneOf/'));
}

/**
 * Parses every complete line of `text` (a last line without its newline is left out: a
 * stopped process may cut it) and checks each against the schema.
 */
export function checkTrafficLines(text: string, source: string): CheckedLines {
  const checked: CheckedLines = { lines: [], problems: [] };
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, index) => {
    const where = `${source} line ${index + 1}:`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      checked.problems.push(`${where} not JSON (${(error as Error).message}): ${shown(line)}`);
      return;
    }
    checked.lines.push(parsed);
    if (!validate(parsed)) {
      for (const error of withoutBranchErrors(validate.errors ?? [])) checked.problems.push(`${where} ${describeError(error)}`);
    }
  });
  return checked;
}

/** Checks every traffic log file in `directory`, rolled ones too, in name order; none when it does not exist. */
export async function checkTrafficLogFiles(directory: string): Promise<CheckedLines> {
  const names = (await readdir(directory).catch(() => [] as string[])).filter((name) => TRAFFIC_LOG_NAME.test(name)).sort();
  const all: CheckedLines = { lines: [], problems: [] };
  for (const name of names) {
    const file = join(directory, name);
    const { lines, problems } = checkTrafficLines(await readFile(file, 'utf8'), file);
    all.lines.push(...lines);
    all.problems.push(...problems);
  }
  return all;
}

/** Throws one error listing the problems (the first 20), if there are any. */
export function assertTrafficLogContract(problems: string[]): void {
  if (problems.length === 0) return;
  const listed = problems.slice(0, 20);
  if (problems.length > listed.length) listed.push(`... and ${problems.length - listed.length} more`);
  throw new Error(`the traffic log breaks its schema (${SCHEMA_FILE}):\n${listed.join('\n')}`);
}
