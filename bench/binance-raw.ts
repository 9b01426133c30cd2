// Read throughput of the binance-raw format (gunzip, line split, JSON, book sync, top-10
// snapshots, book check) over the full Binance spot recordings in ../shared/data, which are
// not part of the product repo. Run after a build:
//   npx tsc -p tsconfig.build.json && node dist/bench/binance-raw.js
// LOB_SHARED_DATA overrides where the recordings are looked for.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { reportSource } from './drain.js';
import { binanceRaw } from '../src/venues/binance-raw.js';

// The two files continue one stream (2024-08-08 23:54 to 2024-08-09 00:05 UTC).
const FILE_NAMES = ['spot_btcusdt_20240808.gz', 'spot_btcusdt_20240809.gz'];
const LEVELS = 10;

/** Prints the read throughput over `dataDir`/binance-spot-btcusdt, or that it is absent. */
export async function benchBinanceRaw(dataDir: string): Promise<void> {
  const files = FILE_NAMES.map((name) => resolve(dataDir, 'binance-spot-btcusdt', name));
  const missing = files.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    console.log(`binance-raw bench: recordings ABSENT (${missing.join(', ')}); set LOB_SHARED_DATA. Nothing measured.`);
    return;
  }
  console.log(`binance-raw bench, node ${process.version}, ${files.length} files, top ${LEVELS} levels`);
  // Every frame is parsed; only about 1 in 15 is a depth update (the rest: bookTicker, trade).
  await reportSource('binance-raw, both files', binanceRaw, files, LEVELS);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await benchBinanceRaw(resolve(process.env.LOB_SHARED_DATA ?? resolve(process.cwd(), '../shared/data')));
}
