import { describe, expect, it } from 'vitest';
import { HeldBytes, PayloadCapture } from './payload-capture.js';

describe('a body capture', () => {
  it('keeps nothing that passes after the pipeline took it, so its memory cannot leak', () => {
    const heldBytes = new HeldBytes(1_000);
    const capture = new PayloadCapture(10_000, 'application/json', '', heldBytes, null);
    capture.push(Buffer.alloc(100));
    expect(heldBytes.used).toBe(100);
    // What a back end that answered before the upload ended leaves: the transaction is stored...
    capture.seal();
    expect(capture.held()).toHaveLength(1);
    capture.release();
    // ...while the client's next chunks still pass through the proxy.
    capture.push(Buffer.alloc(100));
    expect(heldBytes.used).toBe(0);
    expect(capture.seen).toBe(200);
    expect(capture.stored).toBe(100);
  });

  it('gives a body up, and its memory back, when holding it would pass the limit', () => {
    const heldBytes = new HeldBytes(150);
    const first = new PayloadCapture(10_000, 'application/json', '', heldBytes, null);
    const second = new PayloadCapture(10_000, 'application/json', '', heldBytes, null);
    first.push(Buffer.alloc(100));
    second.push(Buffer.alloc(40));
    second.push(Buffer.alloc(40));
    expect(second.notStored).toBe('memory-limit');
    expect(heldBytes.used).toBe(100);
    expect(heldBytes.refused).toBe(1);
  });
});
