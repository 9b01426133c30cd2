// Small helpers every websocket mapper needs at its edge: parse a frame without throwing,
// and turn a problem into a `rejected` message that names the field.
import type { Rejected, RejectReason } from '../domain/types.js';
import { parseJsonBounded } from '../domain/json-edge.js';
import { rejected, sampleOf } from '../domain/types.js';

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value as it appears in an error message: JSON, shortened; `missing` when absent. */
export function describeValue(value: unknown, max = 40): string {
  return value === undefined ? 'missing' : sampleOf(value, max);
}

/**
 * Parses a frame (`what` names it in the error: `frame`, `snapshot`) with its nesting bounded.
 * Returns the value, or a `malformed_json` rejection; never throws.
 */
export function parseJsonFrame(text: string, what: string, symbol: string | null): { readonly value: unknown } | Rejected {
  const parsed = parseJsonBounded(text, what);
  return parsed.ok ? { value: parsed.value } : rejected('malformed_json', parsed.detail, text, symbol);
}

/**
 * A problem deep inside a frame's validation, thrown by the mappers that check nested arrays
 * (Coinbase, Kraken v1) and caught once per frame, where it becomes a `rejected` message.
 */
export class FrameError {
  constructor(
    readonly reason: RejectReason,
    readonly detail: string,
  ) {}
}

/** A value as it appeared in the frame (strings quoted), cut short for a detail message. */
export function shown(value: unknown, max: number): string {
  return sampleOf(value === undefined ? 'undefined' : JSON.stringify(value), max);
}
