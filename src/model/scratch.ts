// Buffers a learner needs only during one call, shared by every learner of this thread (each
// worker thread has its own module instance): a thousand idle symbols then hold one copy of
// each, not a thousand. Calls never interleave on a thread, so one buffer per length is enough.

/** Each use gets its own buffers, so two scratch buffers of one call never alias. */
export type ScratchUse = 'gradient' | 'projection';

// One map per use, keyed by length: no key is built per call (the learners ask once a tick).
const scratch: Record<ScratchUse, Map<number, Float64Array>> = { gradient: new Map(), projection: new Map() };
const spares = new Map<number, Float64Array>();

/** A buffer of `length` for `use` within the current call only; its contents are undefined. */
export function scratchBuffer(use: ScratchUse, length: number): Float64Array {
  const buffers = scratch[use];
  let buffer = buffers.get(length);
  if (!buffer) {
    buffer = new Float64Array(length);
    buffers.set(length, buffer);
  }
  return buffer;
}

/**
 * Double buffering without a second buffer per learner: take the spare of `length`, write the
 * next state into it, then hand the old state back with `returnSpare`. Each learner always
 * owns exactly one buffer; the thread keeps one spare per length.
 */
export function takeSpare(length: number): Float64Array {
  const spare = spares.get(length);
  if (spare) {
    spares.delete(length);
    return spare;
  }
  return new Float64Array(length);
}

export function returnSpare(buffer: Float64Array): void {
  spares.set(buffer.length, buffer);
}
