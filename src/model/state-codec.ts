// A learner's whole state as bytes: a small JSON header (kind, config, counters, array
// names and lengths) followed by raw little-endian float64 arrays, so parameters and
// sensitivities survive a round trip bit for bit. The header is validated with zod when
// read back: a checkpoint from disk is an edge.
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';

const MAGIC = 0x5453524c; // "LRST" little-endian
const VERSION = 1;

const headerSchema = z.object({
  kind: z.string().min(1),
  meta: z.record(z.string(), z.unknown()),
  arrays: z.array(z.tuple([z.string().min(1), z.number().int().nonnegative()])),
});

export interface EncodedState {
  readonly kind: string;
  readonly meta: Record<string, unknown>;
  readonly arrays: Record<string, Float64Array>;
}

export function encodeState(state: EncodedState): Uint8Array {
  const names = Object.keys(state.arrays);
  const header = JSON.stringify({
    kind: state.kind,
    meta: state.meta,
    arrays: names.map((name) => [name, state.arrays[name].length]),
  });
  const headerBytes = Buffer.from(header, 'utf8');
  const dataOffset = align8(12 + headerBytes.length);
  const total = dataOffset + names.reduce((sum, name) => sum + state.arrays[name].length * 8, 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, headerBytes.length, true);
  bytes.set(headerBytes, 12);
  let offset = dataOffset;
  for (const name of names) {
    const array = state.arrays[name];
    for (let i = 0; i < array.length; i++, offset += 8) view.setFloat64(offset, array[i], true);
  }
  return bytes;
}

export function decodeState(bytes: Uint8Array, expectedKind?: string): EncodedState {
  if (bytes.length < 12) throw new Error(`learner state: ${bytes.length} bytes is too short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new Error('learner state: bad magic number (not a lob-rtrl learner state)');
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw new Error(`learner state: version ${version} is not supported (expected ${VERSION})`);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > bytes.length) throw new Error('learner state: header runs past the end');
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 12, headerLength).toString('utf8'));
  } catch {
    throw new Error('learner state: header is not valid JSON');
  }
  const parsed = headerSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`learner state: ${describeIssues(parsed.error)}`);
  const header = parsed.data;
  if (expectedKind !== undefined && header.kind !== expectedKind) {
    throw new Error(`learner state: kind is "${header.kind}", expected "${expectedKind}"`);
  }
  let offset = align8(12 + headerLength);
  const arrays: Record<string, Float64Array> = {};
  for (const [name, length] of header.arrays) {
    if (offset + length * 8 > bytes.length) throw new Error(`learner state: array "${name}" runs past the end`);
    const array = new Float64Array(length);
    for (let i = 0; i < length; i++, offset += 8) array[i] = view.getFloat64(offset, true);
    arrays[name] = array;
  }
  return { kind: header.kind, meta: header.meta, arrays };
}

/** The named array, with the expected length, or an error naming it. */
export function requireArray(state: EncodedState, name: string, length: number): Float64Array {
  const array = state.arrays[name];
  if (!array) throw new Error(`learner state: missing array "${name}"`);
  if (array.length !== length) throw new Error(`learner state: array "${name}" has ${array.length} values, expected ${length}`);
  return array;
}

/** Fails with a message naming the first field of `expected` that `actual` differs on. */
export function requireSameConfig(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) throw new Error(`learner state: ${what} differs from this learner's (${a} vs ${b})`);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Frames several byte chunks into one buffer: [count u32][length u32, bytes]... */
export function packChunks(chunks: readonly Uint8Array[]): Uint8Array {
  const total = 4 + chunks.reduce((sum, chunk) => sum + 4 + chunk.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, chunks.length, true);
  let offset = 4;
  for (const chunk of chunks) {
    view.setUint32(offset, chunk.length, true);
    out.set(chunk, offset + 4);
    offset += 4 + chunk.length;
  }
  return out;
}

export function unpackChunks(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length < 4) throw new Error('state: too short to hold its chunk count');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  const chunks: Uint8Array[] = [];
  let offset = 4;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > bytes.length) throw new Error(`state: chunk ${i} header runs past the end`);
    const length = view.getUint32(offset, true);
    if (offset + 4 + length > bytes.length) throw new Error(`state: chunk ${i} runs past the end`);
    chunks.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return chunks;
}

/**
 * The `count` live records of a ring buffer (records of `stride` values, `capacity` slots,
 * oldest at `start`), oldest first: saving only what is live keeps checkpoints small however
 * large the preallocated ring.
 */
export function packRing(ring: Float64Array, stride: number, capacity: number, start: number, count: number): Float64Array {
  const out = new Float64Array(count * stride);
  for (let r = 0; r < count; r++) {
    const slot = (start + r) % capacity;
    out.set(ring.subarray(slot * stride, slot * stride + stride), r * stride);
  }
  return out;
}

/** Writes records packed by `packRing` back into `ring` from slot `start`; returns their count. */
export function unpackRing(packed: Float64Array, ring: Float64Array, stride: number, capacity: number, start: number): number {
  if (packed.length % stride !== 0) throw new Error(`learner state: ring of ${packed.length} values is not a whole number of ${stride}-value records`);
  const count = packed.length / stride;
  if (count > capacity) throw new Error(`learner state: ${count} ring records do not fit ${capacity} slots`);
  for (let r = 0; r < count; r++) {
    const slot = (start + r) % capacity;
    ring.set(packed.subarray(r * stride, r * stride + stride), slot * stride);
  }
  return count;
}
