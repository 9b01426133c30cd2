import { describe, expect, it } from 'vitest';
import type { BookSnapshot } from '../../src/domain/types.js';
import { defaultEngineConfig, engineConfigHash, type EngineConfig } from '../../src/engine/config.js';
import { SymbolEngine } from '../../src/engine/symbol-engine.js';
import { FEATURE_SET_VERSION } from '../../src/features/extract.js';
import { parseModelList } from '../../src/model/factory.js';
import { EngineCheckpoints } from '../../src/store/engine-checkpoints.js';

const config: EngineConfig = { ...defaultEngineConfig, levels: 2, models: parseModelList('logistic,majority') };

function snapshot(i: number): BookSnapshot {
  const bid = 100 + (i % 3);
  return { type: 'book_snapshot', symbol: 'T', ts: i * 10, localTs: i * 10, seq: i, bids: Float64Array.of(bid, 1 + (i % 5)), asks: Float64Array.of(bid + 1, 2) };
}

describe('the feature set version guards checkpoints', () => {
  it('enters the configuration hash', () => {
    expect(engineConfigHash(config)).toBe(engineConfigHash(config, FEATURE_SET_VERSION));
    expect(engineConfigHash(config, 'flow-1')).not.toBe(engineConfigHash(config));
  });

  it('a checkpoint made with another feature set is skipped, never loaded', () => {
    const store = EngineCheckpoints.open(':memory:');
    try {
      const trained = new SymbolEngine('T', config);
      for (let i = 0; i < 50; i++) trained.onSnapshot(snapshot(i));
      store.save(trained, engineConfigHash(config, 'book-1'), 'test', 1);
      const other = store.restore('T', () => new SymbolEngine('T', config), engineConfigHash(config));
      expect(other.checkpoint).toBeNull();
      expect(other.engine.ticks).toBe(0);
      // The same checkpoint under this feature set's hash does load.
      const saved = store.save(trained, engineConfigHash(config), 'test', 2);
      const same = store.restore('T', () => new SymbolEngine('T', config), engineConfigHash(config));
      expect(same.checkpoint).toBe(saved.id);
      expect(same.engine.ticks).toBe(50);
    } finally {
      store.close();
    }
  });
});
