import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { BIN } from './gateway-process.js';

/** `tollgate pump` as a child process: its output kept, stopped (SIGTERM) or killed (SIGKILL) by the test. */
export class PumpProcess {
  output = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(configFile: string, env: NodeJS.ProcessEnv = {}): PumpProcess {
    return new PumpProcess(spawn(process.execPath, [BIN, 'pump', '--config', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }
}
