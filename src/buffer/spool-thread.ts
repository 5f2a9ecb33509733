import { parentPort, workerData } from 'node:worker_threads';
import { Spool } from './spool.js';
import type { SpoolReply, SpoolRequest, StoreResult } from './spool-writer.js';

// SQLite commits wait for fsync: done here, that wait never stalls the gateway's event loop.
const spool = new Spool((workerData as { path: string }).path);

/**
 * Stores in one commit as many batches as fit within `maxBytes`, in order. With `makeRoom` every
 * batch is taken: the oldest in the spool go to make room, and when the new ones alone are over
 * the limit, the oldest of them too. Evicting and appending are one commit: a failed append
 * evicts nothing.
 */
function store(batches: Uint8Array[], records: number[], maxBytes: number, makeRoom: boolean): StoreResult {
  const entries = batches.map((data, index) => ({ data: Buffer.from(data.buffer, data.byteOffset, data.length), records: records[index] ?? 0 }));
  return spool.inOneCommit(() => {
    if (makeRoom) {
      const kept: typeof entries = [];
      let size = 0;
      for (const entry of [...entries].reverse()) {
        if (size + entry.data.length > maxBytes) break;
        size += entry.data.length;
        kept.unshift(entry);
      }
      let evicted = entries.slice(0, entries.length - kept.length).reduce((sum, entry) => sum + entry.records, 0);
      const over = spool.totals().bytes + size - maxBytes;
      if (over > 0) evicted += spool.deleteOldest(over).records;
      if (kept.length > 0) spool.append(kept);
      return { stored: entries.length, evicted };
    }
    let room = maxBytes - spool.totals().bytes;
    const fitting = [];
    for (const entry of entries) {
      if (entry.data.length > room) break;
      room -= entry.data.length;
      fitting.push(entry);
    }
    if (fitting.length > 0) spool.append(fitting);
    return { stored: fitting.length, evicted: 0 };
  });
}

function perform(request: SpoolRequest): unknown {
  switch (request.op) {
    case 'store':
      return store(request.batches, request.records, request.maxBytes, request.makeRoom);
    case 'delete':
      spool.delete(request.ids);
      return null;
    case 'markSent':
      spool.markSent(request.sent, request.run);
      return null;
    case 'unsent':
      return spool.unsent(request.run, request.afterId, request.limit);
    case 'sentEntries':
      return spool.sentEntries(request.run);
    case 'forgetSent':
      spool.forgetSent(request.run);
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
