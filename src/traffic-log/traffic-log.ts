import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { TransactionConsumer } from '../recording/recorder.js';
import type { Transaction } from '../recording/transaction.js';
import { DiskQuota } from './disk-quota.js';
import type { EventFormatter } from './event-formatter.js';
import { RollingFile, StdoutLines, type LineDestination } from './rolling-file.js';

const MB = 1024 * 1024;

/** The open traffic event log: every finished transaction as lines on a destination. */
export class TrafficLog implements TransactionConsumer {
  constructor(
    readonly formatter: EventFormatter,
    readonly destination: LineDestination,
    readonly quota: DiskQuota | null,
  ) {}

  accept(transaction: Transaction): void {
    // Encoded per transaction: one long string of many transactions is far slower to flatten
    // and encode at write time.
    this.destination.write(Buffer.from(this.formatter.format(transaction)));
  }

  async close(): Promise<void> {
    await this.quota?.stop();
    await this.destination.close();
  }
}

export interface TrafficLogOptions {
  config: Config['trafficLog'];
  group: string;
  instance: string;
  formatter: EventFormatter;
  onError: (error: Error) => void;
}

/** The traffic log for `trafficLog.output`, or null when it is `none`. */
export function openTrafficLog({ config, group, instance, formatter, onError }: TrafficLogOptions): TrafficLog | null {
  if (config.output === 'none') return null;
  if (config.output === 'stdout') return new TrafficLog(formatter, new StdoutLines(onError), null);

  const directory = resolve(config.directory);
  const base = `${group}_${instance}_traffic`;
  let quota: DiskQuota | null = null;
  const file = new RollingFile(directory, base, config.maxFileSizeMb * MB, () => void quota?.enforce(), onError);
  quota = new DiskQuota({
    logDirectory: directory,
    // Every instance's traffic files count against the quota of the shared directory.
    isLogFile: (name) => /_traffic(_\d{4}-\d{2}-\d{2}-\d+)?\.log$/.test(name),
    isCurrentFile: (name) => name.endsWith('_traffic.log'),
    payloadDirectory: config.payloads.enabled ? resolve(config.payloads.directory) : null,
    maxBytes: config.maxDiskSpaceMb * MB,
    onError,
  });
  quota.start(config.diskCheckIntervalSec * 1000);
  return new TrafficLog(formatter, file, quota);
}
