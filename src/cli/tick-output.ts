// Replay output for analysis: one row per tick with every model's probabilities and the label
// the tick resolved to (`--out`), and the tick's feature vector with the same label
// (`--features-out`), as JSON lines or, for a `.parquet` path, Apache Parquet.
//
// A row is written once its label is known (or known never to come: a disconnect or an
// expiry drops pending ticks, and the ticks still pending at the end have no label), so rows
// leave per symbol in tick order, interleaved across symbols by resolution time.
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ParquetWriter, fileWriter, schemaFromColumnData, type ColumnSource } from 'hyparquet-writer';
import type { Prediction } from '../engine/symbol-engine.js';
import { featureNames } from '../features/extract.js';
import { classNames, Labeler, type TargetSpec } from '../model/targets.js';

interface PendingTick {
  readonly prediction: Prediction;
  readonly features: Float64Array | null;
}

interface SymbolQueue {
  /** This run's ticks still waiting for their label, oldest first. */
  readonly ticks: PendingTick[];
  /** The target's labeler over this run's mids: the same rule the learners are scored by. */
  readonly labeler: Labeler;
  /** Predictions seen so far. */
  received: number;
  /** Disconnects not yet applied, as the number of predictions that came before each. */
  readonly breaks: number[];
}

/** One column of a table: a name and how to read it from a row. */
interface Column<Row> {
  readonly name: string;
  readonly type: 'STRING' | 'DOUBLE';
  readonly nullable: boolean;
  readonly value: (row: Row) => string | number | null;
}

interface TickRow {
  readonly tick: PendingTick;
  readonly label: string | null;
}

/** A sink of rows: JSON lines or a Parquet file, chosen by the path's extension. */
interface TableSink<Row> {
  write(row: Row): void;
  /** Resolves when the caller may write again without buffering without bound. */
  ready(): Promise<void> | null;
  close(): Promise<void>;
}

export interface TickOutputOptions {
  /** Predictions of every model with the realised label: JSON lines, or Parquet for `*.parquet`. */
  readonly out?: string;
  /** Feature vectors (before standardisation) with the realised label. */
  readonly featuresOut?: string;
  readonly levels: number;
  readonly models: readonly string[];
  readonly target: TargetSpec;
  /** The learners' bound on pending ticks, so ticks expire here exactly when they expire there. */
  readonly maxPending: number;
}

/**
 * Labels each tick from the predictions themselves (their mid and venue time) with the target's
 * own Labeler, so it needs nothing from inside the engine and works the same whether the
 * symbols run on this thread or on workers: only the predictions, in input order, and where
 * the disconnects fell. A row's label is the realised label by the target's definition.
 */
export class TickOutput {
  private readonly symbols = new Map<string, SymbolQueue>();
  private readonly classNames: readonly string[];

  private constructor(
    private readonly options: TickOutputOptions,
    private readonly predictionSink: TableSink<TickRow> | null,
    private readonly featureSink: TableSink<TickRow> | null,
  ) {
    this.classNames = classNames(options.target);
  }

  static async open(options: TickOutputOptions): Promise<TickOutput | null> {
    if (!options.out && !options.featuresOut) return null;
    const predictionSink = options.out ? await openSink(options.out, predictionColumns(options.models, classNames(options.target))) : null;
    const featureSink = options.featuresOut ? await openSink(options.featuresOut, featureColumns(featureNames(options.levels))) : null;
    return new TickOutput(options, predictionSink, featureSink);
  }

  /** Whether feature vectors are wanted (then `onPrediction` needs them). */
  get wantsFeatures(): boolean {
    return this.featureSink !== null;
  }

  /**
   * A disconnect of `symbol` after its `afterTicks`-th snapshot of this run: the learners drop
   * the ticks pending then unscored, and no later mid labels them.
   */
  onDisconnect(symbol: string, afterTicks: number): void {
    const queue = this.queueOf(symbol);
    queue.breaks.push(afterTicks);
    this.applyBreaks(queue);
  }

  /** Every prediction in input order; `features` the tick's vector before standardisation, when wanted. */
  onPrediction(prediction: Prediction, features: Float64Array | null = null): void {
    const queue = this.queueOf(prediction.symbol);
    this.applyBreaks(queue);
    for (let resolution = queue.labeler.observe(prediction.mid, prediction.ts); resolution !== null; resolution = queue.labeler.observe(prediction.mid, prediction.ts)) {
      if (resolution.kind === 'label') {
        for (let r = 0; r < resolution.count; r++) this.emit(queue.ticks.shift() as PendingTick, this.classNames[resolution.label]);
      } else {
        // Expired unscored, as LearnerSet drops them: every pending tick goes without a label.
        for (const tick of queue.ticks.splice(0)) this.emit(tick, null);
      }
    }
    queue.labeler.addPending(prediction.mid, prediction.ts);
    queue.ticks.push({ prediction, features: this.featureSink && features ? Float64Array.from(features) : null });
    queue.received++;
  }

  /** Backpressure for the replay loop: null when nothing waits. */
  ready(): Promise<void> | null {
    return this.predictionSink?.ready() ?? this.featureSink?.ready() ?? null;
  }

  /** The ticks still pending leave without a label; then the files are completed. */
  async close(): Promise<void> {
    for (const queue of this.symbols.values()) {
      for (const tick of queue.ticks.splice(0)) this.emit(tick, null);
    }
    await this.predictionSink?.close();
    await this.featureSink?.close();
  }

  private queueOf(symbol: string): SymbolQueue {
    let queue = this.symbols.get(symbol);
    if (!queue) {
      queue = { ticks: [], labeler: new Labeler(this.options.target, this.options.maxPending), received: 0, breaks: [] };
      this.symbols.set(symbol, queue);
    }
    return queue;
  }

  private applyBreaks(queue: SymbolQueue): void {
    while (queue.breaks.length > 0 && queue.breaks[0] <= queue.received) {
      queue.breaks.shift();
      queue.labeler.discard();
      for (const tick of queue.ticks.splice(0)) this.emit(tick, null);
    }
  }

  private emit(tick: PendingTick, label: string | null): void {
    const row = { tick, label };
    this.predictionSink?.write(row);
    this.featureSink?.write(row);
  }
}

/** A prediction as `--out` writes it (and the stream sends it): probabilities named by model and class. */
export function predictionRecord(prediction: Prediction) {
  const models: Record<string, Record<string, number>> = {};
  for (const model of prediction.models) {
    const probs: Record<string, number> = {};
    prediction.classNames.forEach((name, c) => (probs[name] = model.probs[c]));
    models[model.model] = probs;
  }
  return { symbol: prediction.symbol, ts: prediction.ts, localTs: prediction.localTs ?? null, seq: prediction.seq, mid: prediction.mid, target: prediction.target, models };
}

/** Column names a SQL engine or pandas takes as they are: `p_<class>_<model>`, `tbptt:10` as `tbptt_10`. */
export function probabilityColumn(model: string, className: string): string {
  return `p_${className}_${model.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

function predictionColumns(models: readonly string[], classNames: readonly string[]): Column<TickRow>[] {
  const columns: Column<TickRow>[] = [
    { name: 'symbol', type: 'STRING', nullable: false, value: (row) => row.tick.prediction.symbol },
    { name: 'ts', type: 'DOUBLE', nullable: false, value: (row) => row.tick.prediction.ts },
    { name: 'localTs', type: 'DOUBLE', nullable: true, value: (row) => row.tick.prediction.localTs ?? null },
    { name: 'seq', type: 'DOUBLE', nullable: false, value: (row) => row.tick.prediction.seq },
    { name: 'mid', type: 'DOUBLE', nullable: false, value: (row) => row.tick.prediction.mid },
    { name: 'target', type: 'STRING', nullable: false, value: (row) => row.tick.prediction.target },
  ];
  models.forEach((model, m) => {
    classNames.forEach((className, c) => {
      columns.push({ name: probabilityColumn(model, className), type: 'DOUBLE', nullable: false, value: (row) => row.tick.prediction.models[m].probs[c] });
    });
  });
  columns.push({ name: 'label', type: 'STRING', nullable: true, value: (row) => row.label });
  return columns;
}

function featureColumns(names: readonly string[]): Column<TickRow>[] {
  return [
    { name: 'symbol', type: 'STRING', nullable: false, value: (row) => row.tick.prediction.symbol },
    { name: 'ts', type: 'DOUBLE', nullable: false, value: (row) => row.tick.prediction.ts },
    { name: 'seq', type: 'DOUBLE', nullable: false, value: (row) => row.tick.prediction.seq },
    ...names.map((name, i): Column<TickRow> => ({ name, type: 'DOUBLE', nullable: false, value: (row) => (row.tick.features as Float64Array)[i] })),
    { name: 'label', type: 'STRING', nullable: true, value: (row) => row.label },
  ];
}

async function openSink(path: string, columns: Column<TickRow>[]): Promise<TableSink<TickRow>> {
  await mkdir(dirname(path), { recursive: true });
  return /\.parquet$/i.test(path) ? new ParquetSink(path, columns) : new JsonLinesSink(path, columns);
}

/** JSON lines. The prediction file nests probabilities by model as the stream does; features stay flat. */
class JsonLinesSink implements TableSink<TickRow> {
  private readonly stream: WriteStream;

  constructor(
    path: string,
    private readonly columns: Column<TickRow>[],
  ) {
    this.stream = createWriteStream(path);
  }

  write(row: TickRow): void {
    let record: Record<string, unknown>;
    if (this.columns.some((c) => c.name === 'mid')) {
      record = { ...predictionRecord(row.tick.prediction), label: row.label };
    } else {
      record = {};
      for (const column of this.columns) record[column.name] = column.value(row);
    }
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  ready(): Promise<void> | null {
    return this.stream.writableNeedDrain ? once(this.stream, 'drain').then(() => undefined) : null;
  }

  async close(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
  }
}

/** Rows gathered into columns and written a row group at a time. */
const ROW_GROUP_ROWS = 65_536;

class ParquetSink implements TableSink<TickRow> {
  private readonly buffers: Array<Array<string | number | null>>;
  private writer: ParquetWriter | null = null;
  private rows = 0;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly path: string,
    private readonly columns: Column<TickRow>[],
  ) {
    this.buffers = columns.map(() => []);
  }

  write(row: TickRow): void {
    for (let i = 0; i < this.columns.length; i++) this.buffers[i].push(this.columns[i].value(row));
    if (++this.rows === ROW_GROUP_ROWS) this.writing = this.flush();
  }

  ready(): Promise<void> | null {
    const writing = this.writing;
    this.writing = null;
    return writing;
  }

  async close(): Promise<void> {
    await this.ready();
    // A run with no tick still leaves a valid file with the schema and no rows.
    if (this.rows > 0 || this.writer === null) await this.flush();
    await this.writer?.finish();
  }

  private async flush(): Promise<void> {
    const columnData: ColumnSource[] = this.columns.map((column, i) => ({ name: column.name, data: this.buffers[i].splice(0), type: column.type, nullable: column.nullable }));
    this.rows = 0;
    if (!this.writer) this.writer = new ParquetWriter({ writer: fileWriter(this.path), schema: schemaFromColumnData({ columnData }), createdBy: 'lob-rtrl' });
    await this.writer.write({ columnData, rowGroupSize: ROW_GROUP_ROWS });
  }
}
