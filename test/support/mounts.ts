import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { afterEach } from 'vitest';

export interface Mounts {
  /** Mounts a tmpfs with `options` (`size=1m`, `ro`, ...) at `path`, made if missing. */
  tmpfs(path: string, options: string): void;
  /** Changes the options of the file system mounted at `path` (`ro`, `rw`). */
  remount(path: string, options: string): void;
  /** Unmounts `path` now. */
  unmount(path: string): void;
}

function mount(args: string[]): void {
  try {
    execFileSync('mount', args, { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`mount ${args.join(' ')} failed (these tests mount file systems and run as root): ${(error as Error).message}`);
  }
}

/**
 * File systems of a test's own: a small or read-only disk the gateway can really meet. Whatever
 * a test leaves mounted is unmounted after it. Call after useGatewayFixture() (or whatever
 * removes the workspace): after-hooks run in reverse order, so the workspace is unmounted first.
 */
export function useMounts(): Mounts {
  let mounted: string[] = [];
  afterEach(() => {
    // Lazily, newest first: a gateway left running by a failed test may still hold files there.
    for (const path of mounted.reverse()) execFileSync('umount', ['-l', path], { stdio: 'pipe' });
    mounted = [];
  });
  return {
    tmpfs(path, options) {
      mkdirSync(path, { recursive: true });
      mount(['-t', 'tmpfs', '-o', options, 'tmpfs', path]);
      mounted.push(path);
    },
    remount(path, options) {
      mount(['-o', `remount,${options}`, path]);
    },
    unmount(path) {
      execFileSync('umount', [path], { stdio: 'pipe' });
      mounted = mounted.filter((other) => other !== path);
    },
  };
}
