// Recordings as every stand-in reads them: `<receive ns> <frame>` lines (hftbacktest's raw
// layout, plain or gzip), several files played as one timeline. Each venue module decides what
// a frame means; this module only reads the lines, keeps the recorded spacing and summarises.
import { readRecordedFrames } from '../venues/lines.js';

/** The subset of a pino logger the stand-ins use; pino's `Logger` satisfies it. */
export interface FeedServerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export const silentLogger: FeedServerLogger = { info() {}, warn() {}, debug() {} };

export interface RecordingSummary {
  /** Entries replayed: stream frames plus inline REST snapshots. */
  readonly entries: number;
  /** Stream names as recorded, e.g. `btcusdt@depth@100ms` (Binance) or `BTC-USDT level2` (Coinbase). */
  readonly streams: readonly string[];
  /** Symbols whose book the stand-in can serve, as the venue spells them. */
  readonly symbols: readonly string[];
  /** Recorded time from the first to the last entry. */
  readonly spanMs: number;
  /** Lines that were not a well-formed frame of the venue, skipped at load. */
  readonly skippedLines: number;
}

/** When each entry is due: what a client session paces itself by. */
export interface Timeline {
  /** Per entry: recorded time since the first entry, ms, never decreasing. */
  readonly offsets: Float64Array;
  readonly spanMs: number;
  /** Recorded time from one loop's first entry to the next loop's first entry. */
  readonly loopPeriodMs: number;
}

/** One recorded line, parsed as JSON (null when it was not JSON). */
export interface RecordedLine {
  readonly path: string;
  readonly localTs: number;
  readonly frame: string;
  readonly parsed: unknown;
}

/** Counts and logs (the first five of) the lines a venue module could not use. */
export class SkippedLines {
  count = 0;

  constructor(private readonly logger: FeedServerLogger) {}

  skip(line: RecordedLine, problem: string): void {
    this.count++;
    if (this.count <= 5) this.logger.warn({ path: line.path, problem, sample: line.frame.slice(0, 120) }, 'feed-server: skipped a recorded line');
  }
}

/** Every line of the recordings in order; a line that is not JSON is counted as skipped. */
export async function* recordedLines(paths: readonly string[], skipped: SkippedLines): AsyncGenerator<RecordedLine> {
  for (const path of paths) {
    for await (const { localTs, frame } of readRecordedFrames(path)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(frame);
      } catch {
        skipped.skip({ path, localTs, frame, parsed: null }, 'malformed JSON');
        continue;
      }
      yield { path, localTs, frame, parsed };
    }
  }
}

/**
 * The pacing of the kept entries. Files given out of order or clock steps backwards must not
 * schedule a frame in the past of its predecessor, so offsets never decrease.
 */
export function timelineOf(times: readonly number[]): Timeline {
  const offsets = new Float64Array(times.length);
  let latest = times.length > 0 ? times[0] : 0;
  for (let i = 0; i < times.length; i++) {
    if (times[i] > latest) latest = times[i];
    offsets[i] = latest - times[0];
  }
  const spanMs = times.length > 0 ? offsets[times.length - 1] : 0;
  const meanGapMs = times.length > 1 ? spanMs / (times.length - 1) : 0;
  return { offsets, spanMs, loopPeriodMs: spanMs + meanGapMs };
}

/** Names stream ids in order of first appearance. */
export class StreamNames {
  readonly names: string[] = [];
  private readonly ids = new Map<string, number>();

  idOf(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(name);
      this.ids.set(name, id);
    }
    return id;
  }
}
