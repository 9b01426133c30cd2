// The real AMZN excerpt in canonical JSON lines (fixtures/canonical: the first 300 LOBSTER
// snapshots of 2012-06-21), as the objects a producer pushes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CanonicalLine {
  symbol: string;
  ts: number;
  seq: number;
  bids: [number, number][];
  asks: [number, number][];
}

export const AMZN_FIXTURE = join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl');

export function amznSnapshots(): CanonicalLine[] {
  return readFileSync(AMZN_FIXTURE, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as CanonicalLine);
}
