import type { Socket } from 'node:net';
import type { Transaction } from '../recording/transaction.js';

/**
 * Answers on a bare socket, where Node offers no response object (a refused upgrade, a request
 * its parser rejected), and closes it: a JSON body naming the problem, recorded on leg 0.
 */
export function answerOnSocket(socket: Socket, transaction: Transaction, status: number, statusText: string, message: string): void {
  const body = JSON.stringify({ error: message, correlationId: transaction.id });
  const fields = ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body)), 'X-Correlation-ID', transaction.id, 'Connection', 'close'];
  const client = transaction.clientLeg;
  transaction.status = client.status = status;
  transaction.statusText = client.statusText = statusText;
  client.sentHeader = { startLine: `HTTP/1.1 ${status} ${statusText}`, fields };
  client.bytesSent = Buffer.byteLength(body);
  client.finalStatus = 'Fail';
  socket.end(responseHead(status, statusText, fields) + body);
}

/** A status line and header fields (a flat name/value list), ending with the blank line. */
export function responseHead(status: number, statusText: string, fields: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${statusText}\r\n`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return `${head}\r\n`;
}
