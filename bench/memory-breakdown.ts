// Where an idle symbol's memory goes: builds symbols at the default configuration, feeds each a
// few ticks of the AMZN fixture, then lists every typed array each part of one symbol holds
// (learner by learner, buffer by buffer) and the heap growth per symbol measured over many.
//   npm run build && node --expose-gc dist/bench/memory-breakdown.js [symbols] [ticks]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultEngineConfig } from '../src/engine/config.js';
import { SymbolEngine } from '../src/engine/symbol-engine.js';
import { packageRoot } from '../src/domain/package-root.js';
import type { BookSnapshot } from '../src/domain/types.js';

interface Row {
  readonly ts: number;
  readonly bids: number[][];
  readonly asks: number[][];
}

function snapshots(count: number, levels: number): BookSnapshot[] {
  const rows = readFileSync(join(packageRoot(), 'fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Row);
  const side = (levelsOf: number[][]) => Float64Array.from(levelsOf.slice(0, levels).flat());
  return Array.from({ length: count }, (_, i) => {
    const row = rows[i % rows.length];
    return { type: 'book_snapshot', symbol: 'X', ts: rows[0].ts + i, localTs: rows[0].ts + i, seq: i, bids: side(row.bids), asks: side(row.asks) } as BookSnapshot;
  });
}

/** Bytes of every typed array reachable from `value` (not through other SymbolEngines), by path. */
function typedArrays(value: unknown, path: string, seen: Set<unknown>, out: Map<string, number>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (ArrayBuffer.isView(value)) {
    out.set(path, (out.get(path) ?? 0) + value.byteLength);
    return;
  }
  const entries = value instanceof Map ? [...value.entries()].map(([k, v]) => [String(k), v] as const) : Object.entries(value as object);
  for (const [key, child] of entries) typedArrays(child, `${path}.${key}`, seen, out);
}

const symbolCount = Number(process.argv[2] ?? 200);
const ticks = Number(process.argv[3] ?? 20);
const config = defaultEngineConfig;
const stream = snapshots(ticks, config.levels);

const one = new SymbolEngine('ONE', config);
for (const snapshot of stream) one.onSnapshot(snapshot);
const parts = new Map<string, number>();
typedArrays(one, 'symbol', new Set(), parts);
const byLearner = new Map<string, number>();
for (const [path, bytes] of parts) {
  const learner = /^symbol\.learners\.learners\.(\d+)/.exec(path);
  const owner = learner ? `learner ${config.models[Number(learner[1])].kind}` : path.split('.').slice(0, 2).join('.');
  byLearner.set(owner, (byLearner.get(owner) ?? 0) + bytes);
}
const kb = (bytes: number) => (bytes / 1024).toFixed(1);
console.log(`typed arrays of one symbol after ${ticks} ticks (default models, levels ${config.levels}):`);
for (const [path, bytes] of [...parts].sort((a, b) => b[1] - a[1])) if (bytes >= 512) console.log(`  ${kb(bytes).padStart(8)} KB  ${path}`);
console.log('by owner:');
for (const [owner, bytes] of [...byLearner].sort((a, b) => b[1] - a[1])) console.log(`  ${kb(bytes).padStart(8)} KB  ${owner}`);
console.log(`  ${kb([...parts.values()].reduce((a, b) => a + b, 0)).padStart(8)} KB  total typed arrays`);
console.log(`checkpoint: ${kb(one.getState().byteLength)} KB`);

const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const before = process.memoryUsage();
const kept: SymbolEngine[] = [];
for (let s = 0; s < symbolCount; s++) {
  const engine = new SymbolEngine(`S${s}`, config);
  for (const snapshot of stream) engine.onSnapshot(snapshot);
  kept.push(engine);
}
gc?.();
const after = process.memoryUsage();
const per = (field: 'rss' | 'heapUsed' | 'arrayBuffers' | 'external') => kb((after[field] - before[field]) / symbolCount);
console.log(
  `per symbol over ${symbolCount}: rss ${per('rss')} KB, heapUsed ${per('heapUsed')} KB, arrayBuffers ${per('arrayBuffers')} KB${gc ? '' : ' (run with --expose-gc for steadier figures)'}`,
);
if (kept.length !== symbolCount) throw new Error('unreachable');
