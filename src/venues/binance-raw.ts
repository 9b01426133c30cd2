// The `binance-raw` recording format (../shared/data/binance-spot-btcusdt, from hftbacktest):
// one `<receive ns> <frame>` per line, gzip or plain, Binance combined-stream frames, with the
// REST depth snapshot inline as a bare `{"lastUpdateId",...}` line. Every frame goes through the
// same mapper as the live feed; the inline snapshot goes through `mapRestSnapshot`. `@trade`
// (and `@aggTrade`) frames become trades in recorded order, interleaved with the books exactly
// as they were received. Several paths are read in order as one continuous stream (one mapper,
// one book). USDⓈ-M futures recordings (`<symbol>@depth@0ms` and friends, events with `pu`, the
// /fapi/v1/depth body inline) replay the same way under the futures sync rule; see binance.ts.
import type { EpochMs, MarketMessage } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { readRecordedFrames } from './lines.js';
import { createBinanceRecordingMapper } from './binance.js';
import type { FileFormat, FrameMapper, MapperOptions } from './types.js';

const INLINE_SNAPSHOT = /^\s*\{\s*"lastUpdateId"/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface HeldSnapshot {
  readonly body: string;
  readonly localTs: EpochMs;
}

/**
 * Names the symbol(s) a recording is about: the `s` of its diff frames, else its stream names.
 * Only consulted until the snapshot's symbol is settled, so the hot path never pays for it.
 */
class SymbolWitness {
  readonly seen = new Set<string>();
  private onlyUpper = '';
  private onlyLower = '';

  /** Cheap test that a frame names the single symbol seen so far (as `s` or in a stream name). */
  mentionsOnlySymbol(frame: string): boolean {
    return frame.includes(this.onlyUpper) || frame.includes(this.onlyLower);
  }

  observe(frame: string): void {
    this.collect(frame);
    if (this.seen.size === 1) {
      this.onlyUpper = this.seen.values().next().value as string;
      this.onlyLower = this.onlyUpper.toLowerCase();
    }
  }

  private collect(frame: string): void {
    let message: unknown;
    try {
      message = JSON.parse(frame);
    } catch {
      return; // the mapper reports the bad frame
    }
    if (!isRecord(message)) return;
    const data = message.data;
    const symbol = isRecord(data) && typeof data.s === 'string' ? data.s : typeof message.s === 'string' ? message.s : null;
    if (symbol !== null) {
      this.seen.add(symbol.toUpperCase());
      return;
    }
    const stream = message.stream;
    if (typeof stream === 'string' && stream.indexOf('@') > 0) this.seen.add(stream.slice(0, stream.indexOf('@')).toUpperCase());
  }
}

async function* readBinanceRaw(paths: readonly string[], options: MapperOptions & { symbol?: string }): AsyncGenerator<MarketMessage> {
  const fixedSymbol = options.symbol?.toUpperCase();
  const mapper: FrameMapper = createBinanceRecordingMapper({
    levels: options.levels,
    symbols: fixedSymbol !== undefined ? [fixedSymbol] : options.symbols,
  });
  const witness = new SymbolWitness();
  // A snapshot recorded before any frame named the symbol waits for the first frame that does.
  let held: HeldSnapshot | null = null;

  const snapshotSymbol = (): string | null | 'ambiguous' => {
    if (fixedSymbol !== undefined) return fixedSymbol;
    if (witness.seen.size === 1) return witness.seen.values().next().value as string;
    return witness.seen.size === 0 ? null : 'ambiguous';
  };

  const applySnapshot = (body: string, localTs: EpochMs): MarketMessage[] => {
    const symbol = snapshotSymbol();
    if (symbol === 'ambiguous') {
      const detail = `symbol: inline snapshot with several symbols in the recording (${[...witness.seen].join(', ')}); pass options.symbol`;
      return [rejected('unknown_symbol', detail, body, null)];
    }
    if (symbol === null) {
      held = { body, localTs };
      return [];
    }
    return mapper.mapRestSnapshot?.(symbol, body, localTs) ?? [];
  };

  for (const path of paths) {
    for await (const { localTs, frame } of readRecordedFrames(path)) {
      if (INLINE_SNAPSHOT.test(frame)) {
        yield* applySnapshot(frame, localTs);
        continue;
      }
      if (fixedSymbol === undefined && witness.seen.size === 0) {
        witness.observe(frame);
        if (held !== null && witness.seen.size > 0) {
          const { body, localTs: heldTs } = held as HeldSnapshot;
          held = null;
          yield* applySnapshot(body, heldTs);
        }
      } else if (fixedSymbol === undefined && witness.seen.size === 1 && !witness.mentionsOnlySymbol(frame)) {
        // A second symbol would make a later inline snapshot ambiguous; only then look closer.
        witness.observe(frame);
      }
      yield* mapper.map(frame, localTs);
    }
  }
  // Trades recorded while the book awaited a snapshot that never came are still trades.
  yield* mapper.releaseHeld?.() ?? [];
  if (held !== null) {
    const { body } = held as HeldSnapshot;
    const detail = 'symbol: the inline snapshot could not be attributed (no frame names a symbol); pass options.symbol';
    yield rejected('unknown_symbol', detail, body, null);
  }
}

export const binanceRaw: FileFormat = {
  id: 'binance-raw',
  read: (paths, options) => readBinanceRaw(paths, options),
};
