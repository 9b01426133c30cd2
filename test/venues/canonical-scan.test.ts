// The canonical line scanner against JSON.parse and the usual checks: whatever it accepts must be
// exactly what parseCanonical makes of JSON.parse(line) (same doubles, bit for bit), and a file
// read through it must give the messages, rejections included, of the line-by-line path.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkBook } from '../../src/domain/book-check.js';
import type { BookSnapshot, MarketMessage } from '../../src/domain/types.js';
import { scanCanonicalBytes } from '../../src/venues/canonical-scan.js';
import { CanonicalMapper, canonicalJsonl, parseCanonical } from '../../src/venues/canonical.js';

const fixtures = fileURLToPath(new URL('../../fixtures/', import.meta.url));
const realLines = readFileSync(join(fixtures, 'canonical/amzn-2012-06-21-first300.jsonl'), 'utf8').split('\n').filter(Boolean);

/** The same snapshot, compared bit for bit (-0 and 0 differ, as they would for JSON.parse). */
function sameSnapshot(scanned: BookSnapshot, expected: BookSnapshot): void {
  expect(scanned.symbol).toBe(expected.symbol);
  expect(Object.is(scanned.ts, expected.ts)).toBe(true);
  expect(scanned.localTs).toBe(expected.localTs);
  expect(scanned.seq).toBe(expected.seq);
  expect(Array.from(scanned.bids)).toEqual(Array.from(expected.bids));
  expect(Array.from(scanned.asks)).toEqual(Array.from(expected.asks));
  for (const [a, b] of [
    [scanned.bids, expected.bids],
    [scanned.asks, expected.asks],
  ]) {
    expect(a.length).toBe(b.length);
    for (let i = 0; i < a.length; i++) expect(Object.is(a[i], b[i])).toBe(true);
  }
}

/** What the usual path makes of the line, when it accepts it as a snapshot. */
function usual(line: string, levels: number): BookSnapshot | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  const result = parseCanonical(value, levels);
  return result.type === 'book_snapshot' ? result : null;
}

const numberText = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(x)),
  fc.double({ min: 0.0001, max: 1e7, noNaN: true }).map((x) => x.toFixed(Math.floor(Math.abs(x * 7) % 9))),
  fc
    .tuple(
      fc.boolean(),
      fc.stringMatching(/^(0|[1-9][0-9]{0,19})$/),
      fc.option(fc.stringMatching(/^[0-9]{1,22}$/)),
      fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.integer({ min: 0, max: 330 }))),
    )
    .map(
      ([negative, whole, fraction, exponent]) =>
        `${negative ? '-' : ''}${whole}${fraction === null ? '' : `.${fraction}`}${exponent === null ? '' : `${exponent[0]}${exponent[1]}${exponent[2]}`}`,
    ),
);

/** The scanner over one line alone: its UTF-8 bytes, nothing after them. */
function scanCanonicalSnapshot(line: string, levels: number, localTs: number | undefined): BookSnapshot | null {
  const bytes = Buffer.from(line, 'utf8');
  return scanCanonicalBytes(bytes, 0, bytes.length, levels, localTs);
}

describe('scanCanonicalBytes', () => {
  it('reads every line of the AMZN excerpt exactly as JSON.parse and parseCanonical do', () => {
    for (const levels of [1, 3, 5, 10]) {
      for (const line of realLines) {
        const scanned = scanCanonicalSnapshot(line, levels, undefined);
        expect(scanned).not.toBeNull();
        sameSnapshot(scanned!, usual(line, levels)!);
      }
    }
  });

  it('converts any JSON number to the double JSON.parse gives (property)', () => {
    fc.assert(
      fc.property(numberText, numberText, (price, size) => {
        const line = `{"symbol":"X","ts":1,"bids":[[${price},${size}]],"asks":[]}`;
        const scanned = scanCanonicalSnapshot(line, 5, undefined);
        const parsed = JSON.parse(line) as { bids: [[number, number]] };
        const [p, s] = parsed.bids[0];
        if (!Number.isFinite(p) || !(Number.isFinite(s) && s > 0)) return scanned === null;
        return scanned !== null && Object.is(scanned.bids[0], p) && Object.is(scanned.bids[1], s);
      }),
      { numRuns: 5000 },
    );
  });

  it('takes the optional type and seq, stamps localTs, and keeps only the first levels', () => {
    const line = '{"type":"book","symbol":"BTC-USD","ts":1723161253000.5,"seq":42,"bids":[[3,1],[2,1],[1,1]],"asks":[[4,2]]}';
    const scanned = scanCanonicalSnapshot(line, 2, 99)!;
    expect(scanned).toMatchObject({ type: 'book_snapshot', symbol: 'BTC-USD', ts: 1723161253000.5, localTs: 99, seq: 42 });
    expect(Array.from(scanned.bids)).toEqual([3, 1, 2, 1]);
    expect(Array.from(scanned.asks)).toEqual([4, 2]);
    expect(scanCanonicalSnapshot('{"symbol":"A","ts":5,"bids":[],"asks":[]}', 5, undefined)).toMatchObject({ seq: undefined, localTs: 5 });
  });

  it('leaves every other shape, and every invalid value, to the usual path', () => {
    const notMine = [
      '{ "symbol":"A","ts":1,"bids":[[1,1]],"asks":[[2,1]]}', // whitespace
      '{"ts":1,"symbol":"A","bids":[[1,1]],"asks":[[2,1]]}', // key order
      '{"symbol":"A\\u0042","ts":1,"bids":[[1,1]],"asks":[[2,1]]}', // an escape
      '{"symbol":"-A","ts":1,"bids":[[1,1]],"asks":[[2,1]]}', // not the symbol pattern
      `{"symbol":"${'A'.repeat(65)}","ts":1,"bids":[[1,1]],"asks":[[2,1]]}`, // too long
      '{"type":"trade","symbol":"A","ts":1,"price":1,"size":1}',
      '{"symbol":"A","ts":-1,"bids":[[1,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1e300,"bids":[[1,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"seq":1.5,"bids":[[1,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"seq":-1,"bids":[[1,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[01,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1.,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[.5,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[+1,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1e,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1,0]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1,-2]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1e999,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1,1,1]],"asks":[[2,1]]}',
      '{"symbol":"A","ts":1,"bids":[[1,1]],"asks":[[2,1]]} ',
      '{"symbol":"A","ts":1,"bids":[[1,1]],"asks":[[2,1]],"extra":1}',
      '{"symbol":"A","ts":1,"bids":[[1,1]]}',
      `{"symbol":"A","ts":1,"bids":[${Array.from({ length: 10_001 }, (_, i) => `[${20_000 - i},1]`).join(',')}],"asks":[[30000,1]]}`,
    ];
    for (const line of notMine) expect(scanCanonicalSnapshot(line, 5, undefined), line.slice(0, 80)).toBeNull();
  });

  it('never accepts what the usual path refuses, and agrees with it on what both accept (fuzzed lines)', () => {
    const mutated = fc.tuple(fc.integer({ min: 0, max: realLines.length - 1 }), fc.nat(), fc.string({ maxLength: 3 })).map(([row, at, insert]) => {
      const line = realLines[row];
      const cut = at % (line.length + 1);
      return line.slice(0, cut) + insert + line.slice(cut + (at % 3));
    });
    fc.assert(
      fc.property(mutated, (line) => {
        const scanned = scanCanonicalSnapshot(line, 5, undefined);
        // The book check comes after the scan (CanonicalMapper.acceptScanned), as after the usual parse.
        if (scanned === null || checkBook(scanned.bids, scanned.asks) !== null) return true;
        const expected = usual(line, 5);
        if (expected === null) return false;
        sameSnapshot(scanned, expected);
        return true;
      }),
      { numRuns: 3000 },
    );
  });
});

describe('canonical JSONL through the scanner', () => {
  it('gives the messages of the line-by-line path, rejections and ordering included', async () => {
    const lines = [
      ...realLines.slice(0, 50),
      realLines[10], // out of order (seq goes back): rejected by both, naming the seq
      '{"symbol":"AMZN","ts":1,"bids":[[2,1]],"asks":[[1,1]]}', // crossed
      '{"symbol":"AMZN","ts":1,"bids":[[1,1]],"asks":[[2,1]]', // malformed
      ...realLines.slice(50, 60),
      '{ "symbol":"AMZN", "ts":1340285500000, "bids":[[1,1]], "asks":[[2,1]] }', // the usual path's
    ];
    const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-scan-'));
    try {
      const file = join(dir, 'mixed.jsonl');
      writeFileSync(file, `${lines.join('\n')}\n`);
      const read: MarketMessage[] = [];
      for await (const batch of canonicalJsonl.readBatches!([file], { levels: 5 })) read.push(...batch);
      const mapper = new CanonicalMapper({ levels: 5 });
      const expected = lines.map((line) => {
        try {
          return mapper.mapValue(JSON.parse(line), undefined)[0];
        } catch {
          return null;
        }
      });
      expect(read).toHaveLength(lines.length);
      for (let i = 0; i < lines.length; i++) {
        if (expected[i] === null) {
          expect(read[i]).toMatchObject({ type: 'rejected', reason: 'malformed_json' });
          continue;
        }
        expect(read[i]).toEqual(expected[i]);
      }
      expect(read.filter((m) => m.type === 'rejected').map((m) => (m as { reason: string }).reason)).toEqual(['out_of_order', 'crossed_book', 'malformed_json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
