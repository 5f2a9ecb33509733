import { Command, InvalidArgumentError } from 'commander';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../config/load.js';
import { serverUrl, startDemoBackend } from '../demo/backend.js';
import { VERSION } from '../version.js';
import { printPayload } from './payload-command.js';
import { runGateway } from './run-gateway.js';
import { Pump } from '../pump/pump.js';
import { runPump, runReplay } from './run-pump.js';

function port(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) throw new InvalidArgumentError('expected a port number 0-65535');
  return parsed;
}

function fail(error: unknown): never {
  process.stderr.write(`tollgate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}

const program = new Command('tollgate')
  .description('Tollgate: an API gateway that keeps a complete, redacted record of every transaction.')
  .version(VERSION);

program
  .command('gateway')
  .description('Start the gateway. TOLLGATE_TRAFFIC_LOG_OUTPUT (none|file|stdout) and TOLLGATE_TRAFFIC_LOG_PAYLOAD (true|false) override the file.')
  .requiredOption('-c, --config <file>', 'configuration file (YAML, or JSON by its .json extension)')
  .action(async ({ config }: { config: string }) => {
    try {
      await runGateway(await loadConfig(config));
    } catch (error) {
      fail(error);
    }
  });

program
  .command('pump')
  .description('Deliver the analytics records of the buffer (analytics.buffer) to the sinks of pump.sinks, acknowledging each batch once every sink has it.')
  .requiredOption('-c, --config <file>', 'configuration file (the gateway and the pump may share one)')
  .action(async ({ config }: { config: string }) => {
    try {
      await runPump(await loadConfig(config), config);
    } catch (error) {
      fail(error);
    }
  });

program
  .command('replay')
  .description("Deliver a sink's dead-letter batches (pump.deadLetterDirectory/<sink>.spool) to it, deleting each once delivered.")
  .requiredOption('-s, --sink <name>', 'the sink, by its name in pump.sinks (its type when it has no name)')
  .requiredOption('-c, --config <file>', 'configuration file')
  .action(async ({ sink, config }: { sink: string; config: string }) => {
    try {
      await runReplay(await loadConfig(config), sink, process.stdout);
    } catch (error) {
      fail(error);
    }
  });

program
  .command('validate')
  .description(
    'Check a configuration file, the TOLLGATE_* overrides and what start-up needs (writable log directories, TLS files); exits non-zero listing every problem (key path, expected, found).',
  )
  .requiredOption('-c, --config <file>', 'configuration file to check')
  .action(async ({ config }: { config: string }) => {
    try {
      const parsed = await loadConfig(config);
      process.stdout.write(`${config}: valid (${parsed.apis.length} API${parsed.apis.length === 1 ? '' : 's'})\n`);
    } catch (error) {
      fail(error);
    }
  });

program
  .command('payload')
  .description(
    'Print the body a recvPayload/sentPayload link points to, byte for byte: file:///path (a whole file) or file:///path.bin#offset=N&length=M (packed layout).',
  )
  .argument('<link>', 'the file:// link from the traffic log (quote it: it may contain "&")')
  .action(async (link: string) => {
    try {
      await printPayload(link, process.stdout);
    } catch (error) {
      fail(error);
    }
  });

program
  .command('demo-backend')
  .description('Start the demo back end used by the quick start, the tests and the benchmark.')
  .option('-p, --port <port>', 'port to listen on', port, 9000)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .action(async ({ port: listenPort, host }: { port: number; host: string }) => {
    try {
      const server = await startDemoBackend(listenPort, host);
      process.stderr.write(`demo back end listening on ${serverUrl(server)}\n`);
      const stop = (): void => void server.close(() => process.exit(0));
      process.once('SIGTERM', stop).once('SIGINT', stop);
    } catch (error) {
      fail(error);
    }
  });

program
  .command('quickstart')
  .description('Start the demo back end on port 9000, the gateway on examples/quickstart.yaml and a pump delivering its records to data/records (what `npm start` runs).')
  .action(async () => {
    try {
      const backend = await startDemoBackend(9000);
      process.stderr.write(`demo back end listening on ${serverUrl(backend)}\n`);
      const configFile = fileURLToPath(new URL('../../examples/quickstart.yaml', import.meta.url));
      const config = await loadConfig(configFile);
      const pump = await Pump.start(config, { notify: (message) => process.stderr.write(`tollgate pump: ${message}\n`), configSource: configFile });
      await runGateway(config, {
        afterStart: (url) =>
          process.stderr.write(
            `\nTry:\n  curl -i ${url}/petstore/pets/1\n  curl -i -X POST -H 'Content-Type: application/json' -d '{"name":"Rex","password":"hunter2"}' ${url}/petstore/echo\n` +
              `and watch the log and the analytics records the pump delivers:\n  tail -f logs/quickstart_instance-1_traffic.log\n  tail -f data/records/records.jsonl\n` +
              `  curl -s ${pump.healthUrl ?? ''}/metrics | grep tollgate_pump\n\n`,
          ),
        onClose: async () => {
          await pump.stop();
          await new Promise<void>((resolve) => backend.close(() => resolve()));
        },
      });
    } catch (error) {
      fail(error);
    }
  });

await program.parseAsync(process.argv);
