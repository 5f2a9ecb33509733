import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** Whether /proc is there to read (Linux); without it the CPU columns stay empty. */
export const CPU_SAMPLING_AVAILABLE = existsSync('/proc/self/stat');

/** The unit of the times in /proc/<pid>/stat. */
const TICKS_PER_SECOND = (() => {
  const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
})();

interface ProcessTimes {
  command: string;
  group: number;
  /** utime + stime (all threads) + cutime + cstime (children it has reaped), in ticks. */
  ticks: number;
}

function readTimes(pid: string): ProcessTimes | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // It exited between the listing and the read.
  }
  // The command name (field 2) is in parentheses and may hold spaces; fields[0] is field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const field = (number: number): number => Number(fields[number - 3]);
  return { command: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), group: field(5), ticks: field(14) + field(15) + field(16) + field(17) };
}

/**
 * CPU seconds used so far by each process group (every process whose pgrp it is, all their
 * threads, and the children they reaped, so a worker that exits between two samples still counts).
 * Synchronous, so one sample is one quick pass over /proc. Undefined without /proc.
 */
export function groupCpuSeconds(groups: readonly number[]): number[] | undefined {
  if (!CPU_SAMPLING_AVAILABLE) return undefined;
  const ticks = new Map(groups.map((group) => [group, 0]));
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const times = readTimes(pid);
    const sum = times === undefined ? undefined : ticks.get(times.group);
    if (times !== undefined && sum !== undefined) ticks.set(times.group, sum + times.ticks);
  }
  return groups.map((group) => ticks.get(group)! / TICKS_PER_SECOND);
}

/**
 * CPU seconds used so far by every process running `command` (e.g. `postgres`, whose backends
 * each lead their own process group), with the children they reaped. Undefined without /proc.
 */
export function commandCpuSeconds(command: string): number | undefined {
  if (!CPU_SAMPLING_AVAILABLE) return undefined;
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    const times = /^\d+$/.test(pid) ? readTimes(pid) : undefined;
    if (times?.command === command) ticks += times.ticks;
  }
  return ticks / TICKS_PER_SECOND;
}

/** Microseconds of CPU per request between two samples of one group. */
export function microsPerRequest(before: number | undefined, after: number | undefined, requests: number): number | undefined {
  if (before === undefined || after === undefined || requests === 0) return undefined;
  return ((after - before) * 1e6) / requests;
}

/** CPU seconds used so far by these processes (e.g. the PostgreSQL backends serving one client); one that is gone counts 0. */
export function pidCpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readTimes(String(pid))?.ticks ?? 0;
  return ticks / TICKS_PER_SECOND;
}
