// Small helpers every websocket mapper needs at its edge: parse a frame without throwing,
// and turn a problem into a `rejected` message that names the field.
import type { Rejected, RejectReason } from '../domain/types.js';
import { describeUntrusted, parseJsonBounded } from '../domain/json-edge.js';
import { rejected } from '../domain/types.js';

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
 * What is wrong with one field of a frame: the rejection reason and a detail that names the field
 * and shows its value. Validators return it (`number | FrameError`, told apart by `isFrameError`);
 * the mappers that check deeply nested arrays (Coinbase, Kraken v1) throw it and catch it once per
 * frame. Either way it leaves the mapper as one `rejected` message, never as an exception.
 */
export class FrameError {
  constructor(
    readonly reason: RejectReason,
    readonly detail: string,
  ) {}
}

export function isFrameError(value: unknown): value is FrameError {
  return value instanceof FrameError;
}

/**
 * How a detail message shows a frame value. The mappers grew two habits, and their messages are
 * relied on: Coinbase and Kraken v1 quote strings and call an absent field `undefined` (`QUOTED`),
 * the others show strings bare and an absent field as `missing` (`BARE`).
 */
export interface ShownStyle {
  readonly absent: string;
  readonly quoteStrings: boolean;
}

export const BARE: ShownStyle = { absent: 'missing', quoteStrings: false };
export const QUOTED: ShownStyle = { absent: 'undefined', quoteStrings: true };

/** A frame value for a detail message: JSON-like, cut at `max` characters, never throwing on any value. */
export function shown(value: unknown, max = 40, style: ShownStyle = BARE): string {
  if (value === undefined) return style.absent;
  if (typeof value === 'string' && !style.quoteStrings) return value.length > max ? `${value.slice(0, max)}…` : value;
  return describeUntrusted(value, max);
}
