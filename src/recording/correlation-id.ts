import { randomBytes } from 'node:crypto';

// Layout as in the anchor product: 4 bytes of Unix seconds, 5 random bytes chosen once per
// process, a 3-byte counter. Unique across instances without coordination, sortable by time.
const processPart = randomBytes(5).toString('hex');
let counter = randomBytes(3).readUIntBE(0, 3);
let cachedSecond = -1;
let cachedPrefix = '';

export function newCorrelationId(nowMs: number = Date.now()): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = second.toString(16).padStart(8, '0') + processPart;
  }
  counter = (counter + 1) & 0xffffff;
  return cachedPrefix + counter.toString(16).padStart(6, '0');
}

