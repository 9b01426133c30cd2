// Read throughput of the binance-raw format (gunzip, line split, JSON, book sync, top-10
// snapshots, book check) over the full Binance spot recordings in ../shared/data, which are
// not part of the product repo. Run after a build:
//   npx tsc -p tsconfig.build.json && node dist/bench/binance-raw.js
// LOB_SHARED_DATA overrides where the recordings are looked for.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MarketMessage } from '../src/domain/types.js';
import { Featuriser } from './featurise.js';
import { binanceRaw } from '../src/venues/binance-raw.js';

// The two files continue one stream (2024-08-08 23:54 to 2024-08-09 00:05 UTC).
const FILE_NAMES = ['spot_btcusdt_20240808.gz', 'spot_btcusdt_20240809.gz'];
const LEVELS = 10;
const RUNS = 3;

async function drain(files: readonly string[], featurise = false): Promise<{ counts: Map<string, number>; ms: number }> {
  const counts = new Map<string, number>();
  const featuriser = featurise ? new Featuriser(LEVELS) : null;
  const started = performance.now();
  for await (const message of binanceRaw.read(files, { levels: LEVELS })) {
    count(counts, message);
    featuriser?.feed(message);
  }
  return { counts, ms: performance.now() - started };
}

function count(counts: Map<string, number>, message: MarketMessage): void {
  const key = message.type === 'rejected' ? `rejected:${message.reason}` : message.type;
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Prints the read throughput over `dataDir`/binance-spot-btcusdt, or that it is absent. */
export async function benchBinanceRaw(dataDir: string): Promise<void> {
  const files = FILE_NAMES.map((name) => resolve(dataDir, 'binance-spot-btcusdt', name));
  const missing = files.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    console.log(`binance-raw bench: recordings ABSENT (${missing.join(', ')}); set LOB_SHARED_DATA. Nothing measured.`);
    return;
  }
  console.log(`binance-raw bench, node ${process.version}, ${files.length} files, top ${LEVELS} levels`);
  await drain(files); // warm-up: JIT and file cache
  for (let run = 1; run <= RUNS; run += 1) {
    const { counts, ms } = await drain(files);
    const snapshots = counts.get('book_snapshot') ?? 0;
    const rate = Math.round((snapshots / ms) * 1000);
    console.log(`run ${run}: ${snapshots} snapshots in ${ms.toFixed(0)} ms = ${rate.toLocaleString('en-US')} snapshots/s; ${JSON.stringify(Object.fromEntries(counts))}`);
  }
  const featurised = await drain(files, true);
  const snapshots = featurised.counts.get('book_snapshot') ?? 0;
  console.log(`mapped + featurised: ${Math.round((snapshots / featurised.ms) * 1000).toLocaleString('en-US')} snapshots/s (most frames are bookTicker/trade: every frame is parsed, 1 in 15 is a depth update)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchBinanceRaw(resolve(process.env.LOB_SHARED_DATA ?? resolve(process.cwd(), '../shared/data')));
}
