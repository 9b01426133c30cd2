// Draining a file source for the benchmarks: counting what it yields, and optionally running
// the features as the engine does before the learners (per symbol an extractor and an online
// normaliser over preallocated arrays).
import type { MarketMessage } from '../src/domain/types.js';
import { messageBatches, type FileFormat } from '../src/venues/types.js';
import { FeatureExtractor } from '../src/features/extract.js';
import { OnlineNormaliser } from '../src/features/normaliser.js';

export class Featuriser {
  private readonly perSymbol = new Map<string, { extractor: FeatureExtractor; normaliser: OnlineNormaliser; raw: Float64Array; out: Float64Array }>();
  /** A running checksum so the work cannot be optimised away. */
  checksum = 0;

  constructor(private readonly levels: number) {}

  feed(message: MarketMessage): void {
    if (message.type === 'disconnect') {
      for (const state of this.perSymbol.values()) state.extractor.reset();
      return;
    }
    if (message.type !== 'book_snapshot') return;
    let state = this.perSymbol.get(message.symbol);
    if (!state) {
      const extractor = new FeatureExtractor(this.levels);
      state = { extractor, normaliser: new OnlineNormaliser(extractor.dimension), raw: new Float64Array(extractor.dimension), out: new Float64Array(extractor.dimension) };
      this.perSymbol.set(message.symbol, state);
    }
    state.extractor.extract(message, state.raw);
    state.normaliser.normalise(state.raw, state.out);
    this.checksum += state.out[0];
  }
}

export interface Drained {
  /** Messages by type (`rejected:<reason>` for rejections). */
  readonly counts: Map<string, number>;
  readonly ms: number;
  readonly snapshots: number;
}

/** Reads `paths` to the end through `format`; with `featurise`, also computes features. */
export async function drain(format: FileFormat, paths: readonly string[], levels: number, featurise = false): Promise<Drained> {
  const counts = new Map<string, number>();
  const featuriser = featurise ? new Featuriser(levels) : null;
  const started = performance.now();
  for await (const batch of messageBatches(format, paths, { levels })) {
    for (const message of batch) {
      const key = message.type === 'rejected' ? `rejected:${message.reason}` : message.type;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      featuriser?.feed(message);
    }
  }
  return { counts, ms: performance.now() - started, snapshots: counts.get('book_snapshot') ?? 0 };
}

/** Prints mapping throughput and mapping + features throughput of one source (after a warm-up). */
export async function reportSource(label: string, format: FileFormat, paths: readonly string[], levels: number): Promise<void> {
  await drain(format, paths, levels); // warm-up: JIT and file cache
  const mapped = await drain(format, paths, levels);
  const featurised = await drain(format, paths, levels, true);
  const rate = (d: Drained) => Math.round((d.snapshots / d.ms) * 1000).toLocaleString('en-US');
  console.log(
    `${label}: ${mapped.snapshots} snapshots; mapped ${rate(mapped)}/s (${mapped.ms.toFixed(0)} ms), mapped + featurised ${rate(featurised)}/s; ${JSON.stringify(Object.fromEntries(mapped.counts))}`,
  );
}
