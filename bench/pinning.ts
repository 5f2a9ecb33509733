import { execFileSync } from 'node:child_process';
import { findExecutable } from './processes.js';

export interface Pinning {
  description: string;
  /** Wraps a server's argv so it runs on the server cores. */
  server(argv: string[]): string[];
}

/**
 * Keeps the load generator off the cores the servers use. The harness itself moves to the load core,
 * so wrk (a child) inherits it and autocannon (in-process) runs there.
 */
export function setUpPinning(cores: number): Pinning {
  const unpinned = (why: string): Pinning => ({ description: `unpinned (${why})`, server: (argv) => argv });
  if (cores < 2) return unpinned(`only ${cores} core`);
  const taskset = findExecutable('taskset');
  if (taskset === undefined) return unpinned('taskset not found');

  const loadCpu = String(cores - 1);
  const serverCpus = cores === 2 ? '0' : `0-${cores - 2}`;
  execFileSync(taskset, ['-a', '-p', '-c', loadCpu, String(process.pid)], { stdio: 'ignore' });
  return {
    description: `servers on CPU ${serverCpus}, load tool on CPU ${loadCpu} (taskset)`,
    server: (argv) => [taskset, '-c', serverCpus, ...argv],
  };
}
