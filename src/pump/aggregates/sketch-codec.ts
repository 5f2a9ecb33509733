import type { DDSketch } from '@datadog/sketches-js';

/**
 * DDSketch's protobuf message (DataDog/sketches-proto `DDSketch`), written and read here rather
 * than through sketches-js's `toProto`/`fromProto`, which took about a millisecond per sketch: a
 * pump rewriting hundreds of bucket rows a second spent most of its time there. The bytes are the
 * same message, so any DDSketch implementation reads them.
 *
 *   DDSketch { IndexMapping mapping = 1; Store positiveValues = 2; Store negativeValues = 3; double zeroCount = 4; }
 *   IndexMapping { double gamma = 1; double indexOffset = 2; Interpolation interpolation = 3; }
 *   Store { map<sint32, double> binCounts = 1; repeated double contiguousBinCounts = 2 [packed]; sint32 contiguousBinIndexOffset = 3; }
 */

/** A store's bins: `counts[i]` is the count of key `offset + i`. */
export interface DecodedStore {
  offset: number;
  counts: number[];
}

export interface DecodedSketch {
  gamma: number;
  indexOffset: number;
  interpolation: number;
  positive: DecodedStore;
  negative: DecodedStore;
  zeroCount: number;
}

const WIRE_VARINT = 0;
const WIRE_64 = 1;
const WIRE_LEN = 2;
const WIRE_32 = 5;

class Writer {
  readonly #parts: Buffer[] = [];
  #length = 0;

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  varint(value: number): void {
    const bytes: number[] = [];
    let rest = value >>> 0;
    while (rest > 0x7f) {
      bytes.push((rest & 0x7f) | 0x80);
      rest >>>= 7;
    }
    bytes.push(rest);
    this.#push(Buffer.from(bytes));
  }

  double(value: number): void {
    const bytes = Buffer.allocUnsafe(8);
    bytes.writeDoubleLE(value);
    this.#push(bytes);
  }

  doubles(values: readonly number[]): void {
    const bytes = Buffer.allocUnsafe(values.length * 8);
    for (let i = 0; i < values.length; i++) bytes.writeDoubleLE(values[i] as number, i * 8);
    this.varint(bytes.length);
    this.#push(bytes);
  }

  message(field: number, inner: Writer): void {
    this.tag(field, WIRE_LEN);
    this.varint(inner.#length);
    for (const part of inner.#parts) this.#push(part);
  }

  bytes(): Buffer {
    return Buffer.concat(this.#parts, this.#length);
  }

  #push(part: Buffer): void {
    this.#parts.push(part);
    this.#length += part.length;
  }
}

const zigzag = (value: number): number => ((value << 1) ^ (value >> 31)) >>> 0;
const unzigzag = (value: number): number => (value >>> 1) ^ -(value & 1);

function storeMessage(store: DDSketch['store']): Writer {
  const writer = new Writer();
  if (store.count === 0) return writer;
  // Only the occupied keys: the store's array also holds room it grew into.
  const from = store.minKey - store.offset;
  const counts = store.bins.slice(from, store.maxKey - store.offset + 1);
  writer.tag(2, WIRE_LEN);
  writer.doubles(counts);
  if (store.minKey !== 0) {
    writer.tag(3, WIRE_VARINT);
    writer.varint(zigzag(store.minKey));
  }
  return writer;
}

/** The sketch as DDSketch's protobuf message. */
export function encodeSketch(sketch: DDSketch): Buffer {
  const mapping = new Writer();
  mapping.tag(1, WIRE_64);
  mapping.double(sketch.mapping.gamma);
  const offset = (sketch.mapping as unknown as { _offset: number })._offset;
  if (offset !== 0) {
    mapping.tag(2, WIRE_64);
    mapping.double(offset);
  }
  const writer = new Writer();
  writer.message(1, mapping);
  writer.message(2, storeMessage(sketch.store));
  writer.message(3, storeMessage(sketch.negativeStore));
  if (sketch.zeroCount !== 0) {
    writer.tag(4, WIRE_64);
    writer.double(sketch.zeroCount);
  }
  return writer.bytes();
}

class Reader {
  position: number;

  constructor(
    readonly buffer: Buffer,
    readonly start: number,
    readonly end: number,
  ) {
    this.position = start;
  }

  get done(): boolean {
    return this.position >= this.end;
  }

  varint(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.position >= this.end) throw new Error('a latency sketch ends inside a number');
      const byte = this.buffer[this.position++] as number;
      // Past 32 bits only the sign extension of a negative int32 follows: the low bits are kept.
      if (shift < 32) value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value >>> 0;
    }
  }

  double(): number {
    if (this.position + 8 > this.end) throw new Error('a latency sketch ends inside a number');
    const value = this.buffer.readDoubleLE(this.position);
    this.position += 8;
    return value;
  }

  inner(): Reader {
    const length = this.varint();
    if (this.position + length > this.end) throw new Error('a latency sketch ends inside a field');
    const inner = new Reader(this.buffer, this.position, this.position + length);
    this.position += length;
    return inner;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_64) this.position += 8;
    else if (wire === WIRE_LEN) this.position += this.varint();
    else if (wire === WIRE_32) this.position += 4;
    else throw new Error(`a latency sketch holds a field of unknown wire type ${wire}`);
  }
}

function readStore(reader: Reader): DecodedStore {
  const contiguous: number[] = [];
  let offset = 0;
  const mapped = new Map<number, number>();
  while (!reader.done) {
    const tag = reader.varint();
    const [field, wire] = [tag >>> 3, tag & 7];
    if (field === 1 && wire === WIRE_LEN) {
      const entry = reader.inner();
      let key = 0;
      let count = 0;
      while (!entry.done) {
        const entryTag = entry.varint();
        if (entryTag === ((1 << 3) | WIRE_VARINT)) key = unzigzag(entry.varint());
        else if (entryTag === ((2 << 3) | WIRE_64)) count = entry.double();
        else entry.skip(entryTag & 7);
      }
      mapped.set(key, (mapped.get(key) ?? 0) + count);
    } else if (field === 2 && wire === WIRE_LEN) {
      const packed = reader.inner();
      while (!packed.done) contiguous.push(packed.double());
    } else if (field === 2 && wire === WIRE_64) {
      contiguous.push(reader.double());
    } else if (field === 3 && wire === WIRE_VARINT) {
      offset = unzigzag(reader.varint());
    } else {
      reader.skip(wire);
    }
  }
  if (mapped.size === 0) return { offset, counts: contiguous };
  // Both forms at once: lay the map over the contiguous bins.
  const keys = [...mapped.keys(), ...(contiguous.length > 0 ? [offset, offset + contiguous.length - 1] : [])];
  const low = Math.min(...keys);
  const counts = new Array<number>(Math.max(...keys) - low + 1).fill(0);
  contiguous.forEach((count, i) => (counts[offset + i - low] = (counts[offset + i - low] as number) + count));
  for (const [key, count] of mapped) counts[key - low] = (counts[key - low] as number) + count;
  return { offset: low, counts };
}

/** Reads DDSketch's protobuf message; throws on bytes that are not one. */
export function decodeSketch(bytes: Uint8Array): DecodedSketch {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(buffer, 0, buffer.length);
  const decoded: DecodedSketch = { gamma: NaN, indexOffset: 0, interpolation: 0, positive: { offset: 0, counts: [] }, negative: { offset: 0, counts: [] }, zeroCount: 0 };
  while (!reader.done) {
    const tag = reader.varint();
    const [field, wire] = [tag >>> 3, tag & 7];
    if (field === 1 && wire === WIRE_LEN) {
      const mapping = reader.inner();
      while (!mapping.done) {
        const inner = mapping.varint();
        if (inner === ((1 << 3) | WIRE_64)) decoded.gamma = mapping.double();
        else if (inner === ((2 << 3) | WIRE_64)) decoded.indexOffset = mapping.double();
        else if (inner === ((3 << 3) | WIRE_VARINT)) decoded.interpolation = mapping.varint();
        else mapping.skip(inner & 7);
      }
    } else if (field === 2 && wire === WIRE_LEN) decoded.positive = readStore(reader.inner());
    else if (field === 3 && wire === WIRE_LEN) decoded.negative = readStore(reader.inner());
    else if (field === 4 && wire === WIRE_64) decoded.zeroCount = reader.double();
    else reader.skip(wire);
  }
  if (Number.isNaN(decoded.gamma)) throw new Error('a latency sketch has no index mapping');
  return decoded;
}
