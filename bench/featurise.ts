// Mapping plus features, as the engine does it before the learners: per symbol a feature
// extractor and an online normaliser over preallocated arrays.
import type { MarketMessage } from '../src/domain/types.js';
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
