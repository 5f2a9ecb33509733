import { parentPort, workerData } from 'node:worker_threads';
import { Spool } from './spool.js';
import type { SpoolReply, SpoolRequest, StoreResult } from './spool-writer.js';

// SQLite commits wait for fsync: done here, that wait never stalls the gateway's event loop.
const spool = new Spool((workerData as { path: string }).path);

function store(batches: Uint8Array[], records: number[], maxBytes: number, makeRoom: boolean): StoreResult {
  const incoming = batches.reduce((sum, data) => sum + data.length, 0);
  let evicted = 0;
  if (makeRoom && spool.totals().bytes + incoming > maxBytes) evicted = spool.deleteOldest(spool.totals().bytes + incoming - maxBytes).records;
  let room = maxBytes - spool.totals().bytes;
  const fitting = [];
  for (const [index, data] of batches.entries()) {
    if (data.length > room) break;
    room -= data.length;
    fitting.push({ data: Buffer.from(data.buffer, data.byteOffset, data.length), records: records[index] ?? 0 });
  }
  return { stored: fitting.length, ids: fitting.length === 0 ? [] : spool.append(fitting), evicted };
}

function perform(request: SpoolRequest): unknown {
  switch (request.op) {
    case 'store':
      return store(request.batches, request.records, request.maxBytes, request.makeRoom);
    case 'totals':
      return spool.totals();
    case 'delete':
      spool.delete(request.ids);
      return null;
    case 'markSent':
      spool.markSent(request.sent, request.run);
      return null;
    case 'unsent':
      return spool.unsent(request.run, request.afterId, request.limit);
    case 'sentEntries':
      return spool.sentEntries();
    case 'keepSent':
      spool.keepSent(request.kept, request.run);
      return null;
    case 'close':
      spool.checkpoint();
      spool.close();
      return null;
  }
}

parentPort?.on('message', (request: SpoolRequest) => {
  let reply: SpoolReply;
  try {
    reply = { seq: request.seq, result: perform(request) };
  } catch (error) {
    const { message, code } = error as Error & { code?: string };
    reply = { seq: request.seq, error: { message, code: code ?? null } };
  }
  parentPort?.postMessage(reply);
});
