// zod schemas for what crosses the edges. Only the edges validate; inside, typed data.
import { z } from 'zod';

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });
const level = z.tuple([finite, finite.refine((v) => v > 0, { message: 'size must be > 0' })]);

/**
 * The canonical snapshot: the canonical JSONL file format, the push-ingest message and
 * the input of `POST /v1/snapshots`. Ordering and crossing are checked by `checkBook`
 * after parsing so that every source reports them the same way.
 */
export const canonicalSnapshotSchema = z.object({
  symbol: z.string().min(1).max(64),
  ts: finite,
  seq: z.number().int().optional(),
  bids: z.array(level).max(10_000),
  asks: z.array(level).max(10_000),
});

export type CanonicalSnapshot = z.infer<typeof canonicalSnapshotSchema>;

/** Formats zod issues as `path: message; path: message`, naming each field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.map(String).join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}
