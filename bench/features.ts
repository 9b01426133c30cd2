// Throughput of feature extraction and online normalisation on synthetic L = 10 books.
// The books are generated up front (a seeded random walk of a 10-level book) so the timed
// loop measures only extract + normalise, as the engine calls them per snapshot.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { BookSnapshot } from '../src/domain/types.js';
import { checkBook } from '../src/domain/book-check.js';
import { FeatureExtractor, featureDimension } from '../src/features/extract.js';
import { OnlineNormaliser } from '../src/features/normaliser.js';

export interface FeaturesBenchResult {
  readonly levels: number;
  readonly ticks: number;
  readonly extractPerSecond: number;
  readonly normalisePerSecond: number;
  readonly bothPerSecond: number;
}

function syntheticBooks(count: number, levels: number, seed: number): BookSnapshot[] {
  let s = seed >>> 0;
  const random = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  const tick = 0.01;
  let mid = 60_000;
  const books: BookSnapshot[] = [];
  for (let n = 0; n < count; n++) {
    mid += (Math.floor(random() * 5) - 2) * tick;
    const halfSpread = tick * (1 + Math.floor(random() * 3));
    const bids = new Float64Array(2 * levels);
    const asks = new Float64Array(2 * levels);
    for (let i = 0; i < levels; i++) {
      bids[2 * i] = mid - halfSpread - i * tick;
      bids[2 * i + 1] = 0.001 + random() * 3;
      asks[2 * i] = mid + halfSpread + i * tick;
      asks[2 * i + 1] = 0.001 + random() * 3;
    }
    const problem = checkBook(bids, asks);
    if (problem) throw new Error(`synthetic book ${n} is unsound: ${problem.detail}`);
    const ts = n * 100;
    books.push({ type: 'book_snapshot', symbol: 'SYNTH', ts, localTs: ts, seq: n, bids, asks });
  }
  return books;
}

function perSecond(ticks: number, run: () => void): number {
  run(); // warm-up pass so the JIT has compiled the loop before it is timed
  const start = performance.now();
  run();
  return ticks / ((performance.now() - start) / 1000);
}

export function benchFeatures(levels = 10, ticks = 1_000_000): FeaturesBenchResult {
  const books = syntheticBooks(4096, levels, 12345);
  const extractor = new FeatureExtractor(levels);
  const normaliser = new OnlineNormaliser(extractor.dimension);
  const features = new Float64Array(extractor.dimension);
  const scores = new Float64Array(extractor.dimension);
  let sink = 0;

  const extractPerSecond = perSecond(ticks, () => {
    for (let t = 0; t < ticks; t++) extractor.extract(books[t & 4095], features);
    sink += features[0];
  });
  const normalisePerSecond = perSecond(ticks, () => {
    for (let t = 0; t < ticks; t++) normaliser.normalise(features, scores);
    sink += scores[0];
  });
  const bothPerSecond = perSecond(ticks, () => {
    for (let t = 0; t < ticks; t++) {
      extractor.extract(books[t & 4095], features);
      normaliser.normalise(features, scores);
    }
    sink += scores[0];
  });
  if (!Number.isFinite(sink)) throw new Error('benchmark produced a non-finite value');
  return { levels, ticks, extractPerSecond, normalisePerSecond, bothPerSecond };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = benchFeatures();
  const format = (n: number): string => `${(n / 1e6).toFixed(2)} M/s`;
  console.log(
    `features L=${result.levels} (dimension ${featureDimension(result.levels)}), ${result.ticks} ticks: ` +
      `extract ${format(result.extractPerSecond)}, normalise ${format(result.normalisePerSecond)}, ` +
      `extract + normalise ${format(result.bothPerSecond)}`,
  );
}
