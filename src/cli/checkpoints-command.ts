// `lob-rtrl checkpoints list|export|import`: the checkpoint table of a service database, seen
// and moved without running the service. The database and the keep-K come from the same
// configuration layers as `serve` (defaults < --config file < LOB_RTRL_* < flags).
import type { Command } from 'commander';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { engineConfigHash } from '../engine/config.js';
import { splitStreamId, streamIdOf } from '../domain/stream.js';
import { CheckpointRepository, type CheckpointMeta, type ImportResult } from '../store/checkpoints.js';
import { openDatabase } from '../store/database.js';
import { ConfigError, engineConfigOf, loadServiceConfig, type ServiceConfig } from '../service/config.js';
import { UsageError } from './options.js';

/**
 * Checkpoints newest first within each stream, streams in name order; payloads are not read.
 * `name` picks one stream by id (`venue:symbol`), or by a bare symbol every venue's stream of it
 * (and its checkpoints from before streams had venues).
 */
export function listCheckpoints(db: string, name?: string): CheckpointMeta[] {
  return withRepository(db, 'read', (repository) => streamsNamed(repository, name).flatMap((stream) => repository.list(stream)));
}

function streamsNamed(repository: CheckpointRepository, name: string | undefined): string[] {
  const streams = repository.listSymbols();
  return name === undefined ? streams : streams.filter((stream) => stream === name || splitStreamId(stream).symbol === name);
}

/**
 * A fixed-width table: id, venue (- before streams had venues), symbol, created (UTC), ticks, size, reason and the first 12 hex
 * digits of the config hash, starred when it is `currentConfigHash` (the ones a service with
 * this configuration would resume from).
 */
export function formatCheckpointTable(checkpoints: readonly CheckpointMeta[], currentConfigHash?: string): string {
  const header = ['id', 'venue', 'symbol', 'created (UTC)', 'ticks', 'size', 'reason', 'config'];
  const rows = checkpoints.map((meta) => [
    String(meta.id),
    meta.venue === '' ? '-' : meta.venue,
    meta.symbol,
    new Date(meta.createdAt)
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, ''),
    String(meta.tickCount),
    formatBytes(meta.sizeBytes),
    meta.reason ?? '-',
    `${meta.configHash.slice(0, 12)}${meta.configHash === currentConfigHash ? ' *' : ''}`,
  ]);
  const rightAligned = new Set([0, 4, 5]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (rightAligned.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Writes the repository's export records (payloads as base64) to `out` as a JSON array. */
export function exportCheckpoints(db: string, out: string, symbol?: string): { readonly records: number; readonly symbols: readonly string[] } {
  const records = withRepository(db, 'read', (repository) =>
    symbol === undefined ? repository.export() : streamsNamed(repository, symbol).flatMap((stream) => repository.export(stream)),
  );
  // Written aside and renamed, so an interrupted export never leaves a half file behind.
  const partial = `${out}.partial`;
  writeFileSync(partial, `${JSON.stringify(records, null, 1)}\n`);
  renameSync(partial, out);
  return { records: records.length, symbols: [...new Set(records.map((record) => streamIdOf(record.venue, record.symbol)))] };
}

/**
 * Adds the checkpoints of an export file to `db` (created when missing) under new ids, then
 * keeps the newest `keepPerSymbol` of each symbol. The repository validates every record
 * before writing any; a bad file changes nothing and the error names the record and field.
 */
export function importCheckpoints(db: string, file: string, keepPerSymbol: number): ImportResult {
  let records: unknown;
  try {
    records = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const problem = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(error as Error).message})`;
    throw new Error(`${file}: ${problem}`);
  }
  try {
    return withRepository(db, 'write', (repository) => repository.import(records), keepPerSymbol);
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`);
  }
}

function withRepository<T>(db: string, mode: 'read' | 'write', use: (repository: CheckpointRepository) => T, keepPerSymbol?: number): T {
  // Reading never creates a database (or its folder) where the user mistyped a path.
  if (mode === 'read' && !existsSync(db)) throw new UsageError(`${db}: no such database (set --db or LOB_RTRL_DB)`);
  const database = openDatabase(db, { readonly: mode === 'read' });
  try {
    return use(new CheckpointRepository(database, { keepPerSymbol }));
  } finally {
    database.close();
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

interface CheckpointsFlags {
  config?: string;
  db?: string;
  symbol?: string;
  out?: string;
  json?: boolean;
}

/** The service configuration these flags and the environment give, with config errors as usage errors. */
function configOf(flags: CheckpointsFlags): ServiceConfig {
  try {
    return loadServiceConfig({ env: process.env, file: flags.config, flags: { db: flags.db } });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(`config: ${error.message}`);
    throw error;
  }
}

export function registerCheckpointsCommand(program: Command): void {
  const checkpoints = program.command('checkpoints').description("list, export and import the checkpoints in a service's SQLite database");
  const common = (command: Command) =>
    command.option('--db <file>', 'SQLite database (LOB_RTRL_DB; default ./data/lob-rtrl.sqlite)').option('--config <file>', 'JSON configuration file, as for serve');

  common(checkpoints.command('list').description('one line per checkpoint; * marks those made with the current model configuration'))
    .option('--symbol <name>', 'only this stream (venue:symbol), or every venue’s stream of a symbol')
    .option('--json', 'print a JSON array (every field, full config hash, `current` for the starred ones) instead of a table')
    .action((flags: CheckpointsFlags) => {
      const config = configOf(flags);
      const metas = listCheckpoints(config.db, flags.symbol);
      if (flags.json) {
        const current = engineConfigHash(engineConfigOf(config));
        process.stdout.write(
          `${JSON.stringify(
            metas.map((meta) => ({ ...meta, current: meta.configHash === current })),
            null,
            2,
          )}\n`,
        );
        return;
      }
      if (metas.length === 0) {
        process.stdout.write(`no checkpoints${flags.symbol ? ` of ${flags.symbol}` : ''} in ${config.db}\n`);
        return;
      }
      process.stdout.write(`${formatCheckpointTable(metas, engineConfigHash(engineConfigOf(config)))}\n`);
    });

  common(checkpoints.command('export').description('write checkpoints with their payloads to a JSON file'))
    .option('--symbol <name>', 'only this stream (venue:symbol), or every venue’s stream of a symbol')
    .requiredOption('--out <file>', 'the JSON file to write')
    .action((flags: CheckpointsFlags) => {
      const config = configOf(flags);
      const { records, symbols } = exportCheckpoints(config.db, flags.out as string, flags.symbol);
      process.stdout.write(`exported ${records} checkpoint${records === 1 ? '' : 's'} of ${symbols.length} stream${symbols.length === 1 ? '' : 's'} to ${flags.out}\n`);
    });

  common(checkpoints.command('import').description('add the checkpoints of an export file (all or nothing), keeping the newest K per symbol'))
    .argument('<file>', 'a file written by `checkpoints export`')
    .action((file: string, flags: CheckpointsFlags) => {
      const config = configOf(flags);
      const { imported, prunedCount } = importCheckpoints(config.db, file, config.checkpointKeep);
      process.stdout.write(
        `imported ${imported.length} checkpoint${imported.length === 1 ? '' : 's'} into ${config.db} as ids ${imported.map((meta) => meta.id).join(', ') || '-'}` +
          `${prunedCount > 0 ? `; removed ${prunedCount} older than the newest ${config.checkpointKeep} per symbol` : ''}\n`,
      );
    });
}
