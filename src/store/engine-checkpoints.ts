// Puts a symbol engine's whole state into the checkpoint table and takes it back, verifying
// checksum and configuration: the bridge between the engine (bytes) and SQLite (rows).
import type Database from 'better-sqlite3';
import type { SymbolEngine } from '../engine/symbol-engine.js';
import { CheckpointRepository, type CheckpointMeta } from './checkpoints.js';
import { openDatabase } from './database.js';

export interface CheckpointLogger {
  warn(fields: object, message: string): void;
}

export class EngineCheckpoints {
  readonly repository: CheckpointRepository;

  constructor(readonly db: Database.Database, keepPerSymbol = 5) {
    this.repository = new CheckpointRepository(db, { keepPerSymbol });
  }

  static open(path: string, keepPerSymbol = 5): EngineCheckpoints {
    return new EngineCheckpoints(openDatabase(path), keepPerSymbol);
  }

  /**
   * Restores `engine` from its newest checkpoint that verifies and matches `configHash`.
   * Returns the checkpoint id used, or null when the symbol starts fresh.
   */
  restore(engine: SymbolEngine, configHash: string, logger?: CheckpointLogger): number | null {
    const { checkpoint, skipped } = this.repository.loadNewestValid(engine.symbol, configHash);
    for (const skip of skipped) {
      logger?.warn({ symbol: engine.symbol, checkpoint: skip.id, reason: skip.reason }, 'checkpoint skipped');
    }
    if (!checkpoint) return null;
    try {
      engine.setState(checkpoint.payload);
      return checkpoint.meta.id;
    } catch (error) {
      // A payload that verifies but does not decode was written by incompatible code.
      logger?.warn({ symbol: engine.symbol, checkpoint: checkpoint.meta.id, error: (error as Error).message }, 'checkpoint could not be loaded; starting fresh');
      return null;
    }
  }

  /** Writes the engine's state now; returns only after the transaction committed. */
  save(engine: SymbolEngine, configHash: string, reason: string, now: number): CheckpointMeta {
    return this.repository.save({ symbol: engine.symbol, tickCount: engine.ticks, configHash, payload: engine.getState(), reason, now });
  }

  close(): void {
    this.db.close();
  }
}
