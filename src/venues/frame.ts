// Small helpers every websocket mapper needs at its edge: parse a frame without throwing,
// and turn a problem into a `rejected` message that names the field.
import type { Rejected } from '../domain/types.js';
import { rejected, sampleOf } from '../domain/types.js';

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value as it appears in an error message: JSON, shortened; `missing` when absent. */
export function describeValue(value: unknown, max = 40): string {
  return value === undefined ? 'missing' : sampleOf(value, max);
}

/**
 * Parses a frame (`what` names it in the error: `frame`, `snapshot`). Returns the value, or a
 * `malformed_json` rejection; never throws.
 */
export function parseJsonFrame(text: string, what: string, symbol: string | null): { readonly value: unknown } | Rejected {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return rejected('malformed_json', `${what}: not valid JSON (${(error as Error).message})`, text, symbol);
  }
}
