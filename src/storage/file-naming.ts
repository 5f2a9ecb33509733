import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FileNaming } from './append-file.js';

/** The UTC day of a time, `YYYY-MM-DD`. */
export function utcDay(epochMs: number = Date.now()): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The highest `<n>` of `<base>_<day>-<n><extension>` per day in `directory`, so a restart never reuses a name. */
function highestNumbers(directory: string, base: string, extension: string): Map<string, number> {
  const numbered = new RegExp(`^${escapeRegExp(base)}_(\\d{4}-\\d{2}-\\d{2})-(\\d+)${escapeRegExp(extension)}$`);
  const highest = new Map<string, number>();
  let names: string[] = [];
  try {
    names = readdirSync(directory);
  } catch {
    // Not there yet: it is made when the first file is opened.
  }
  for (const name of names) {
    const match = numbered.exec(name);
    if (match) highest.set(match[1] as string, Math.max(highest.get(match[1] as string) ?? 0, Number(match[2])));
  }
  return highest;
}

function counter(directory: string, base: string, extension: string): () => string {
  const highest = highestNumbers(directory, base, extension);
  return () => {
    const day = utcDay();
    const n = (highest.get(day) ?? 0) + 1;
    highest.set(day, n);
    return join(directory, `${base}_${day}-${n}${extension}`);
  };
}

/**
 * One current file `<base><extension>`, renamed to `<base>_<YYYY-MM-DD>-<n><extension>` when
 * rolled (n counts up per day, never reusing a name): the traffic log's convention, which log
 * shippers tail.
 */
export function rollingNames(directory: string, base: string, extension: string): FileNaming {
  const current = join(directory, `${base}${extension}`);
  const nextRolled = counter(directory, base, extension);
  return { keepsNames: false, next: () => current, rolledName: () => nextRolled() };
}

/**
 * Files named `<base>_<YYYY-MM-DD>-<n><extension>` from the start and never renamed, so links
 * into them stay valid: the packed payload files.
 */
export function numberedNames(directory: string, base: string, extension: string): FileNaming {
  return { keepsNames: true, next: counter(directory, base, extension), rolledName: () => null };
}
