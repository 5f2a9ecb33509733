import { parseArgs } from 'node:util';

/** `--port <n> --target <url>`, shared by the bench's own proxies. */
export function proxyArgs(): { port: number; target: string } {
  const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || values.target === undefined) throw new Error('usage: --port <n> --target <url>');
  return { port, target: values.target };
}
