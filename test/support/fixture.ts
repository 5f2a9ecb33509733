import type { IncomingMessage, ServerResponse } from 'node:http';
import { startBackend, startDemo, type Backend } from './backends.js';
import { assertTrafficLogContract, checkTrafficLogFiles } from './event-log-contract.js';
import { afterEach, beforeEach, expect } from 'vitest';
import { byTransaction, GatewayProcess, Workspace, type TransactionLines } from './gateway-process.js';

export interface GatewayFixture {
  /** This test's scratch directory. */
  readonly workspace: Workspace;
  /** The demo back end, started for each test when the fixture was asked for it. */
  readonly demo: Backend;
  /** The gateway this test started last, if any. */
  readonly gateway: GatewayProcess | undefined;
  /** A back end closed after the test. */
  backend(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<Backend>;
  /** Writes `config` into the workspace and starts the gateway through the CLI; it is stopped after the test. */
  start(config: Record<string, any>, env?: NodeJS.ProcessEnv): Promise<GatewayProcess>;
  /** Runs `cleanup` after the test, before the gateway stops: an open WebSocket would hold its shutdown. */
  onCleanup(cleanup: () => Promise<void>): void;
  /** Stops the gateway started last (it must exit 0) and returns its transactions by correlation id; `count`, when given, is how many there must be. */
  transactionsAfterStop(count?: number): Promise<Map<string, TransactionLines>>;
  /** Stops the gateway started last and returns its one transaction. */
  onlyTransactionAfterStop(): Promise<TransactionLines>;
}

/** Gives each test of the file a fresh workspace and removes everything it started afterwards. */
export function useGatewayFixture(options: { demo?: boolean } = {}): GatewayFixture {
  let workspace: Workspace;
  let demo: Backend | undefined;
  let gateways: GatewayProcess[];
  let backends: Backend[];
  let cleanups: (() => Promise<void>)[];

  beforeEach(async () => {
    workspace = await Workspace.create();
    gateways = [];
    backends = [];
    cleanups = [];
    demo = options.demo ? await startDemo() : undefined;
    if (demo) backends.push(demo);
  });

  afterEach(async () => {
    try {
      for (const cleanup of cleanups) await cleanup();
      await Promise.all(gateways.map((gateway) => gateway.stop()));
      await Promise.all(backends.map((backend) => backend.close()));
      // Every line any test makes the gateway write keeps the schema, whether the test looks at it or not.
      const checks = [await checkTrafficLogFiles(workspace.logDir), ...gateways.map((gateway) => gateway.checkStdout())];
      assertTrafficLogContract(checks.flatMap((check) => check.problems));
    } finally {
      await workspace.remove();
    }
  });

  return {
    get workspace() {
      return workspace;
    },
    get demo() {
      if (demo === undefined) throw new Error('no demo back end: use useGatewayFixture({ demo: true })');
      return demo;
    },
    get gateway() {
      return gateways.at(-1);
    },
    async backend(handler) {
      const started = await startBackend(handler);
      backends.push(started);
      return started;
    },
    async start(config, env = {}) {
      const gateway = await GatewayProcess.start(await workspace.writeConfig(config), env);
      gateways.push(gateway);
      return gateway;
    },
    onCleanup(cleanup) {
      cleanups.push(cleanup);
    },
    async transactionsAfterStop(count) {
      expect(await gateways.at(-1)?.stop()).toBe(0);
      const transactions = byTransaction(await workspace.logLines());
      if (count !== undefined) expect(transactions.size).toBe(count);
      return transactions;
    },
    async onlyTransactionAfterStop() {
      return [...(await this.transactionsAfterStop(1)).values()][0] as TransactionLines;
    },
  };
}
