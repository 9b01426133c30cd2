// Puts a symbol engine's whole state into the checkpoint table and takes it back, verifying
// checksum and configuration: the bridge between the engine (bytes) and SQLite (rows).
import type Database from 'better-sqlite3';
import type { SymbolEngine } from '../engine/symbol-engine.js';
import { CheckpointRepository, type CheckpointMeta } from './checkpoints.js';
import { openDatabase, type OpenDatabaseOptions } from './database.js';

export interface CheckpointLogger {
  warn(fields: object, message: string): void;
}

export class EngineCheckpoints {
  readonly repository: CheckpointRepository;

  constructor(
    readonly db: Database.Database,
    keepPerSymbol = 5,
  ) {
    this.repository = new CheckpointRepository(db, { keepPerSymbol });
  }

  static open(path: string, keepPerSymbol = 5, options: Pick<OpenDatabaseOptions, 'maxBytes'> = {}): EngineCheckpoints {
    return new EngineCheckpoints(openDatabase(path, options), keepPerSymbol);
  }

  /**
   * A symbol's engine restored from its newest checkpoint that verifies, matches `configHash`
   * and decodes whole, each candidate loaded into its own `fresh()` engine; a checkpoint that
   * verifies but does not decode (written by incompatible code, or damaged before its checksum
   * was taken) is skipped with a warning naming it, and the next older one tried, so nothing of
   * it is ever half-applied. `checkpoint` is the id used, or null when the symbol starts fresh.
   */
  restore(
    symbol: string,
    fresh: () => SymbolEngine,
    configHash: string,
    logger?: CheckpointLogger,
  ): { engine: SymbolEngine; checkpoint: number | null; payload: Uint8Array | null } {
    for (const candidate of this.repository.newestFirst(symbol, configHash)) {
      if ('skipped' in candidate) {
        logger?.warn({ symbol, checkpoint: candidate.skipped.id, reason: candidate.skipped.reason }, 'checkpoint skipped');
        continue;
      }
      const { meta, payload } = candidate.checkpoint;
      const engine = fresh();
      try {
        engine.loadState(payload);
        return { engine, checkpoint: meta.id, payload };
      } catch (error) {
        logger?.warn(
          { symbol, checkpoint: meta.id, reason: 'does_not_decode', error: (error as Error).message },
          'checkpoint skipped: its payload verifies but does not decode; trying the next older one',
        );
      }
    }
    return { engine: fresh(), checkpoint: null, payload: null };
  }

  /** Writes the engine's state now; returns only after the transaction committed. */
  save(engine: SymbolEngine, configHash: string, reason: string, now: number): CheckpointMeta {
    return this.repository.save({ symbol: engine.symbol, tickCount: engine.ticks, configHash, payload: engine.getState(), reason, now });
  }

  close(): void {
    this.db.close();
  }
}
