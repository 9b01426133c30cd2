// zod schemas for what crosses the edges. Only the edges validate; inside, typed data.
import { z } from 'zod';
import { parseJsonBounded } from './json-edge.js';

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });
const positiveSize = finite.refine((v) => v > 0, { message: 'size must be > 0' });
const level = z.tuple([finite, positiveSize]);

/**
 * Symbols are ASCII: 1 to 64 of A-Z a-z 0-9 . _ - : / @ + =, starting with a letter or a digit.
 * That covers every venue's instrument names (BTCUSDT, BTC-USD, XBT/USD, ES.FUT) and keeps a
 * symbol safe in logs, metric labels, URLs (percent-encoded) and SQLite, which must get
 * well-formed UTF-8: a lone surrogate would come back renamed after a restart.
 */
export const SYMBOL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,63}$/;
export const SYMBOL_RULE = '1 to 64 characters of A-Z a-z 0-9 . _ - : / @ + =, starting with a letter or digit';
export const symbolSchema = z.string().regex(SYMBOL_PATTERN, { message: `must be ${SYMBOL_RULE}` });

/**
 * Epoch milliseconds no earlier than 1970 and no later than 2200: a value past that is a unit
 * mistake (µs or ns since the epoch) or an attack (1e308 would put every later snapshot of the
 * symbol out of order). Live and pushed input is also held to the receive clock (see
 * CanonicalMapper's clock skew).
 */
export const MAX_EPOCH_MS = Date.UTC(2200, 0, 1);
export const epochMsSchema = finite.refine((v) => v >= 0 && v < MAX_EPOCH_MS, { message: 'must be epoch milliseconds between 1970 and 2200' });

/**
 * The canonical snapshot: the canonical JSONL file format, the push-ingest message and
 * the input of `POST /v1/snapshots`. Ordering and crossing are checked by `checkBook`
 * after parsing so that every source reports them the same way. `type` may be omitted.
 */
export const canonicalSnapshotSchema = z.object({
  type: z.literal('book').optional(),
  symbol: symbolSchema,
  ts: epochMsSchema,
  seq: z.number().int().nonnegative().optional(),
  bids: z.array(level).max(10_000),
  asks: z.array(level).max(10_000),
});

/**
 * A canonical trade: `side` is the aggressor (the taker's side), null or absent when unknown;
 * `id` is the venue's trade id. An integer id must increase per symbol (a replayed trade would
 * count twice in the flow features); a string id is kept but not ordered.
 */
export const canonicalTradeSchema = z.object({
  type: z.literal('trade'),
  symbol: symbolSchema,
  ts: epochMsSchema,
  price: finite,
  size: positiveSize,
  side: z.enum(['buy', 'sell']).nullable().optional(),
  id: z.union([z.string().min(1).max(64), z.number().int().nonnegative()]).optional(),
});

/** One message of push ingest or a canonical JSONL line: a snapshot or a trade. */
export const canonicalMessageSchema = z.union([canonicalSnapshotSchema, canonicalTradeSchema]);

export type CanonicalSnapshot = z.infer<typeof canonicalSnapshotSchema>;
export type CanonicalTrade = z.infer<typeof canonicalTradeSchema>;

/**
 * JSON text from outside (a bus message, a bucket entry) parsed with its nesting bounded and
 * checked against `schema`: the value, or what is wrong with it, prefixed by `what` and naming
 * each field.
 */
export function checkedJson<T>(text: string, what: string, schema: z.ZodType<T>): { readonly ok: true; readonly value: T } | { readonly ok: false; readonly detail: string } {
  const parsed = parseJsonBounded(text, what);
  if (!parsed.ok) return { ok: false, detail: parsed.detail };
  const checked = schema.safeParse(parsed.value);
  return checked.success ? { ok: true, value: checked.data } : { ok: false, detail: `${what}: ${describeIssues(checked.error)}` };
}

/** Formats zod issues as `path: message; path: message`, naming each field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.map(String).join('.') : '(root)'}: ${issue.message}`).join('; ');
}
