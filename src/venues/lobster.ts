// LOBSTER academic files (Nasdaq): a message file and an orderbook file per symbol and day,
// row k of the orderbook file being the book after message k. Read from the sample .zip,
// from the CSV pair, or from a folder holding either. Layout and halt semantics follow
// LOBSTER_SampleFiles_ReadMe.txt (see ../shared/data/lobster).
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { snapshotOrRejected } from '../domain/book-check.js';
import type { BookSnapshot, Disconnect, EpochMs, MarketMessage, OrderEvent, OrderEventKind, Rejected, RejectReason, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { countedReadStream } from './input-bytes.js';
import { isGzipFile } from './lines.js';
import type { FileFormat, MapperOptions } from './types.js';
import { isZipFile, openZip, type ZipArchive } from './zip.js';

const PRICE_SCALE = 10_000;
/** LOBSTER pads missing levels with these prices and size 0. */
const EMPTY_ASK_PRICE = 9_999_999_999;
const EMPTY_BID_PRICE = -9_999_999_999;

const MESSAGE_COLUMNS = ['time', 'type', 'order_id', 'size', 'price', 'direction'] as const;
const TIME = 0;
const TYPE = 1;
const SIZE = 3;
const PRICE = 4;
const DIRECTION = 5;
const SUBMISSION = 1;
const CANCELLATION = 2;
const DELETION = 3;
const VISIBLE_EXECUTION = 4;
const HIDDEN_EXECUTION = 5;
const TRADING_HALT = 7;
const ORDER_EVENT_KINDS: Record<number, OrderEventKind> = { [SUBMISSION]: 'submit', [CANCELLATION]: 'cancel', [DELETION]: 'delete' };
/** Price column of a type-7 message: -1 halt, 0 quoting resumes, 1 trading resumes. */
const HALT = -1;
const QUOTING_RESUMES = 0;
const TRADING_RESUMES = 1;

export interface LobsterFileName {
  readonly symbol: string;
  /** Trading day, `YYYY-MM-DD`. */
  readonly date: string;
  readonly kind: 'message' | 'orderbook';
  /** Levels per side in the orderbook file. */
  readonly levels: number;
  /** What the message and orderbook file of one pair share, e.g. `AMZN_2012-06-21_34200000_57600000_5`. */
  readonly pairKey: string;
}

const FILE_NAME = /^(.+)_(\d{4}-\d{2}-\d{2})_(\d+)_(\d+)_(message|orderbook)_(\d+)\.csv(?:\.gz)?$/;

/** Parses `TICKER_YYYY-MM-DD_start_end_(message|orderbook)_LEVELS.csv[.gz]`; null otherwise. */
export function parseLobsterFileName(path: string): LobsterFileName | null {
  const match = FILE_NAME.exec(basename(path));
  if (!match) return null;
  const [, symbol, date, start, end, kind, levels] = match;
  return {
    symbol,
    date,
    kind: kind as 'message' | 'orderbook',
    levels: Number(levels),
    pairKey: `${symbol}_${date}_${start}_${end}_${levels}`,
  };
}

const HOUR_MS = 3_600_000;
const SECONDS_PER_DAY = 86_400;

/**
 * Converts LOBSTER times (seconds after midnight, New York wall clock) of one trading day
 * into epoch ms with the real America/New_York rules, EST or EDT as the date requires.
 * The UTC offset only changes on a whole wall-clock hour there, so it is looked up once per
 * hour of data, not per row.
 */
export class EasternDayClock {
  private readonly midnightAsUtcMs: number;
  private cachedHour = Number.NaN;
  private cachedOffsetMs = 0;

  constructor(date: string) {
    const [year, month, day] = date.split('-').map(Number);
    this.midnightAsUtcMs = Date.UTC(year, month - 1, day);
    if (!Number.isFinite(this.midnightAsUtcMs)) throw new Error(`not a date: ${date}`);
  }

  toEpochMs(secondsAfterMidnight: number): EpochMs {
    const wallMs = this.midnightAsUtcMs + secondsAfterMidnight * 1000;
    const hour = Math.floor(wallMs / HOUR_MS);
    if (hour !== this.cachedHour) {
      this.cachedHour = hour;
      this.cachedOffsetMs = wallClockOffsetMs(hour * HOUR_MS);
    }
    return wallMs - this.cachedOffsetMs;
  }
}

/** Epoch ms of `secondsAfterMidnight` on `date` (YYYY-MM-DD), New York wall clock. */
export function easternToEpochMs(date: string, secondsAfterMidnight: number): EpochMs {
  return new EasternDayClock(date).toEpochMs(secondsAfterMidnight);
}

const newYorkFormat = new Intl.DateTimeFormat('en-US', {
  timeZone: 'America/New_York',
  hourCycle: 'h23',
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric',
});

/** New York wall clock minus UTC at `instantMs`, in ms (-4 h in EDT, -5 h in EST). */
function newYorkOffsetAt(instantMs: number): number {
  const parts: Record<string, number> = {};
  for (const part of newYorkFormat.formatToParts(instantMs)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  const wallAsUtc = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return wallAsUtc - Math.floor(instantMs / 1000) * 1000;
}

/**
 * The offset that applies to a wall-clock time (given as if it were UTC). The offset is a
 * property of instants, so it is looked up twice: at a guessed instant, then at the instant
 * that guess implies (which differs only near a DST switch).
 */
function wallClockOffsetMs(wallAsUtcMs: number): number {
  return newYorkOffsetAt(wallAsUtcMs - newYorkOffsetAt(wallAsUtcMs));
}

/**
 * Parses the comma-separated numbers of `line` into `out` without allocating for plain
 * integers (every LOBSTER orderbook cell); other cells go through Number(). An empty or
 * non-numeric cell becomes NaN. Returns the number of cells, which may exceed `out.length`
 * (the extra cells are counted, not stored).
 */
export function parseCsvNumbers(line: string, out: Float64Array): number {
  let column = 0;
  let start = 0;
  const length = line.length;
  while (start <= length) {
    let end = line.indexOf(',', start);
    if (end === -1) end = length;
    if (column < out.length) out[column] = parseCell(line, start, end);
    column++;
    start = end + 1;
  }
  return column;
}

function parseCell(line: string, start: number, end: number): number {
  if (end === start) return Number.NaN;
  let index = start;
  const negative = line.charCodeAt(index) === 45; /* - */
  if (negative) index++;
  // 15 digits always fit a double exactly; longer or non-digit cells take the slow path.
  if (index < end && end - index <= 15) {
    let value = 0;
    for (; index < end; index++) {
      const digit = line.charCodeAt(index) - 48;
      if (digit < 0 || digit > 9) break;
      value = value * 10 + digit;
    }
    if (index === end) return negative ? -value : value;
  }
  // Number() would quietly accept surrounding blanks; a cell with them is malformed.
  if (line.charCodeAt(start) <= 32 || line.charCodeAt(end - 1) <= 32) return Number.NaN;
  return Number(line.slice(start, end));
}

function orderbookColumnName(index: number): string {
  const level = (index >> 2) + 1;
  return `${['ask_px', 'ask_sz', 'bid_px', 'bid_sz'][index & 3]}${level}`;
}

/**
 * Turns one LOBSTER file pair, row by row, into messages. Stateful (halt state, last time)
 * and free of I/O; never throws: a bad row becomes a `rejected` naming the column.
 */
export class LobsterRowMapper {
  private readonly message = new Float64Array(MESSAGE_COLUMNS.length);
  private readonly book: Float64Array;
  private readonly clock: EasternDayClock;
  private readonly levels: number;
  private halted = false;
  private lastTs = Number.NEGATIVE_INFINITY;
  /** Whether `book` still holds the previous accepted row: the book an event of this row met. */
  private hasPreviousBook = false;
  private flow: Trade | OrderEvent | null = null;

  constructor(
    private readonly symbol: string,
    date: string,
    private readonly fileLevels: number,
    levels: number,
  ) {
    this.clock = new EasternDayClock(date);
    this.book = new Float64Array(4 * fileLevels);
    this.levels = Math.max(1, Math.floor(levels));
  }

  /**
   * The trade (types 4, 5) or order event (types 1 to 3) of the row just mapped, when that row's
   * book was accepted; null otherwise. Taken once: the reader yields it before the snapshot, so
   * the flow reaches the features of the book it produced and never an earlier one.
   */
  takeFlow(): Trade | OrderEvent | null {
    const flow = this.flow;
    this.flow = null;
    return flow;
  }

  /** Maps message row `row` (0-based) and the orderbook row after it; null when nothing is emitted. */
  map(messageLine: string, orderbookLine: string, row: number): MarketMessage | null {
    this.flow = null;
    const message = this.message;
    const messageColumns = parseCsvNumbers(messageLine, message);
    if (messageColumns !== MESSAGE_COLUMNS.length) {
      return this.reject('schema', `message row ${row}: expected ${MESSAGE_COLUMNS.length} columns, got ${messageColumns}`, messageLine);
    }
    for (let column = 0; column < MESSAGE_COLUMNS.length; column++) {
      if (!Number.isFinite(message[column])) {
        return this.reject('schema', `message row ${row} column ${MESSAGE_COLUMNS[column]}: expected a number, got ${cellText(messageLine, column)}`, messageLine);
      }
    }
    const type = message[TYPE];
    if (!(Number.isInteger(type) && type >= 1 && type <= TRADING_HALT)) {
      return this.reject('schema', `message row ${row} column type: expected an integer 1..7, got ${cellText(messageLine, TYPE)}`, messageLine);
    }
    const direction = message[DIRECTION];
    if (direction !== 1 && direction !== -1) {
      return this.reject('schema', `message row ${row} column direction: expected 1 or -1, got ${cellText(messageLine, DIRECTION)}`, messageLine);
    }
    const seconds = message[TIME];
    if (seconds < 0 || seconds > SECONDS_PER_DAY) {
      return this.reject('schema', `message row ${row} column time: expected seconds after midnight in [0, ${SECONDS_PER_DAY}], got ${cellText(messageLine, TIME)}`, messageLine);
    }
    const ts = this.clock.toEpochMs(seconds);
    if (ts < this.lastTs) {
      return this.reject('out_of_order', `message row ${row} column time: ${seconds} is earlier than the previous row`, messageLine);
    }

    if (type === TRADING_HALT) {
      const price = message[PRICE];
      if (price === HALT) {
        this.lastTs = ts;
        if (this.halted) return null;
        this.halted = true;
        const halt: Disconnect = { type: 'disconnect', symbol: this.symbol, localTs: ts, reason: `trading halt (LOBSTER row ${row})` };
        return halt;
      }
      if (price === QUOTING_RESUMES) {
        this.lastTs = ts;
        return null;
      }
      if (price !== TRADING_RESUMES) {
        return this.reject('schema', `message row ${row} column price: a trading-halt message expects -1, 0 or 1, got ${cellText(messageLine, PRICE)}`, messageLine);
      }
      this.halted = false;
    } else if (this.halted) {
      // Quotes during a halt (and after a quote-only resumption) are not a tradable book.
      this.lastTs = ts;
      return null;
    }

    // Read before the new row overwrites the book: the level an order event met.
    const flow = this.flowOf(type, direction, ts);
    const book = this.book;
    const bookColumns = parseCsvNumbers(orderbookLine, book);
    if (bookColumns !== book.length) {
      return this.reject('schema', `orderbook row ${row}: expected ${book.length} columns (${this.fileLevels} levels), got ${bookColumns}`, orderbookLine);
    }
    for (let column = 0; column < book.length; column++) {
      if (!Number.isFinite(book[column])) {
        return this.reject('schema', `orderbook row ${row} column ${orderbookColumnName(column)}: expected a number, got ${cellText(orderbookLine, column)}`, orderbookLine);
      }
    }

    const snapshot: BookSnapshot = {
      type: 'book_snapshot',
      symbol: this.symbol,
      ts,
      localTs: ts,
      seq: row,
      bids: this.side(2, EMPTY_BID_PRICE),
      asks: this.side(0, EMPTY_ASK_PRICE),
    };
    const checked = snapshotOrRejected(snapshot, orderbookLine);
    if (checked.type === 'book_snapshot') {
      this.lastTs = ts;
      this.hasPreviousBook = true;
      this.flow = flow;
    } else {
      this.hasPreviousBook = false;
    }
    return checked;
  }

  /**
   * Executions become trades whose aggressor is the side opposite the executed resting order
   * (LOBSTER's direction is that order's side); submissions and cancellations become order
   * events. Cross trades (type 6) and halts carry no directional flow. Sizes that are not
   * positive or prices that are not positive carry nothing usable and are dropped.
   */
  private flowOf(type: number, direction: number, ts: EpochMs): Trade | OrderEvent | null {
    const message = this.message;
    const size = message[SIZE];
    const ticks = message[PRICE];
    if (!(size > 0 && ticks > 0)) return null;
    const side = direction as 1 | -1;
    if (type === VISIBLE_EXECUTION || type === HIDDEN_EXECUTION) {
      return { type: 'trade', symbol: this.symbol, ts, localTs: ts, price: ticks / PRICE_SCALE, size, aggressor: side === 1 ? -1 : 1, tradeId: undefined };
    }
    const kind = ORDER_EVENT_KINDS[type];
    if (kind === undefined) return null;
    return { type: 'order_event', symbol: this.symbol, ts, localTs: ts, kind, side, price: ticks / PRICE_SCALE, size, level: this.levelOf(side, ticks) };
  }

  /**
   * Levels of `side` in the previous row's book priced strictly better than `ticks`; -1 when
   * there is no previous book or the price lies beyond a side whose every file level is quoted.
   */
  private levelOf(side: 1 | -1, ticks: number): number {
    if (!this.hasPreviousBook) return -1;
    const book = this.book;
    const offset = side === 1 ? 2 : 0;
    const emptyPrice = side === 1 ? EMPTY_BID_PRICE : EMPTY_ASK_PRICE;
    let better = 0;
    let quoted = 0;
    for (let i = offset; i < book.length; i += 4) {
      if (book[i] === emptyPrice && book[i + 1] === 0) continue;
      quoted++;
      if (side === 1 ? book[i] > ticks : book[i] < ticks) better++;
    }
    // Worse than every quoted level of a full side: it may sit at any deeper level.
    return better === quoted && quoted === this.fileLevels ? -1 : better;
  }

  /** One side in dollars, best first, padding dropped, at most `levels` levels. */
  private side(offset: 0 | 2, emptyPrice: number): Float64Array {
    const book = this.book;
    const limit = this.levels;
    let count = 0;
    for (let i = offset; i < book.length && count < limit; i += 4) {
      if (!(book[i] === emptyPrice && book[i + 1] === 0)) count++;
    }
    const side = new Float64Array(2 * count);
    let filled = 0;
    for (let i = offset; filled < side.length; i += 4) {
      if (book[i] === emptyPrice && book[i + 1] === 0) continue;
      side[filled] = book[i] / PRICE_SCALE;
      side[filled + 1] = book[i + 1];
      filled += 2;
    }
    return side;
  }

  private reject(reason: RejectReason, detail: string, line: string): Rejected {
    return rejected(reason, `${this.symbol}: ${detail}`, line, this.symbol);
  }
}

/** The raw text of cell `column`, quoted, for error messages (only built on the error path). */
function cellText(line: string, column: number): string {
  const cells = line.split(',');
  return column < cells.length ? JSON.stringify(cells[column]) : '(missing)';
}

/** One message/orderbook pair, wherever its files live. */
type OpenStream = () => Promise<Readable>;

interface LobsterPair {
  readonly name: LobsterFileName;
  readonly openMessages: OpenStream;
  readonly openOrderbooks: OpenStream;
}

interface PairBuilder {
  name: LobsterFileName;
  openMessages?: OpenStream;
  openOrderbooks?: OpenStream;
  origin: string;
}

/**
 * Finds the file pairs among `paths` (zips, CSV files plain or gzip, folders of either).
 * Zips it opens are added to `archives` for the caller to close.
 */
async function findPairs(paths: readonly string[], archives: ZipArchive[]): Promise<LobsterPair[]> {
  const builders = new Map<string, PairBuilder>();
  const add = (name: LobsterFileName, origin: string, open: OpenStream): void => {
    const key = `${origin}|${name.pairKey}`;
    const builder = builders.get(key) ?? { name, origin };
    if (name.kind === 'message') builder.openMessages = open;
    else builder.openOrderbooks = open;
    builders.set(key, builder);
  };

  const addFile = async (path: string, explicit: boolean): Promise<void> => {
    if (await isZipFile(path)) {
      const archive = await openZip(path);
      archives.push(archive);
      for (const entry of archive.names) {
        const name = parseLobsterFileName(entry);
        if (name) add(name, path, () => archive.open(entry));
      }
      return;
    }
    const name = parseLobsterFileName(path);
    if (name) add(name, 'files', () => openCsv(path));
    else if (explicit) throw new Error(`lobster: ${path} is neither a zip nor named TICKER_YYYY-MM-DD_start_end_(message|orderbook)_LEVELS.csv`);
  };

  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      const entries = (await readdir(path, { withFileTypes: true }))
        .filter((entry) => entry.isFile())
        .map((entry) => entry.name)
        .sort();
      for (const entry of entries) await addFile(join(path, entry), false);
    } else {
      await addFile(path, true);
    }
  }

  const pairs: LobsterPair[] = [];
  for (const { name, origin, openMessages, openOrderbooks } of builders.values()) {
    if (!openMessages || !openOrderbooks) {
      const missing = openMessages ? 'orderbook' : 'message';
      throw new Error(`lobster: ${name.pairKey} (${origin}) has no ${missing} file`);
    }
    pairs.push({ name, openMessages, openOrderbooks });
  }
  if (pairs.length === 0) throw new Error(`lobster: no message/orderbook pair found in ${paths.join(', ')}`);
  return pairs;
}

async function openCsv(path: string): Promise<Readable> {
  const file = countedReadStream(path);
  return (await isGzipFile(path)) ? file.pipe(createGunzip()) : file;
}

/**
 * Lines of a byte stream, pulled a chunk at a time: reading two files in lock step then
 * awaits once per chunk instead of once per line per file. Blank lines are skipped.
 */
class LineCursor {
  private lines: string[] = [];
  private index = 0;
  private rest = '';
  private ended = false;
  private readonly chunks: AsyncIterator<string>;

  constructor(private readonly stream: Readable) {
    stream.setEncoding('utf8');
    this.chunks = stream[Symbol.asyncIterator]();
  }

  /** The next line if one is buffered, else undefined (then `fill`). */
  take(): string | undefined {
    while (this.index < this.lines.length) {
      let line = this.lines[this.index++];
      if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1); // CRLF files
      if (line.length > 0) return line;
    }
    return undefined;
  }

  /** Buffers the next chunk's lines; false once the stream is exhausted and nothing is left. */
  async fill(): Promise<boolean> {
    while (!this.ended) {
      const chunk = await this.chunks.next();
      this.index = 0;
      if (chunk.done) {
        this.ended = true;
        this.lines = [this.rest];
        this.rest = '';
      } else {
        this.lines = (this.rest + chunk.value).split('\n');
        this.rest = this.lines.pop() ?? '';
      }
      if (this.lines.length > 0) return true;
    }
    return false;
  }

  /** The next line, awaiting more input only when the buffer is empty; undefined at the end. */
  async next(): Promise<string | undefined> {
    let line = this.take();
    while (line === undefined && (await this.fill())) line = this.take();
    return line;
  }

  close(): void {
    this.stream.destroy();
  }
}

/**
 * One file pair's messages, a batch per stretch of buffered lines: the rows both files hold in
 * memory are mapped without an await, and the batch is handed over before reading more.
 */
async function* readPairBatches(pair: LobsterPair, options: MapperOptions & { symbol?: string }): AsyncGenerator<MarketMessage[]> {
  const symbol = options.symbol ?? pair.name.symbol;
  const mapper = new LobsterRowMapper(symbol, pair.name.date, pair.name.levels, options.levels);
  const messages = new LineCursor(await pair.openMessages());
  const orderbooks = new LineCursor(await pair.openOrderbooks());
  let batch: MarketMessage[] = [];
  try {
    for (let row = 0; ; row++) {
      let message = messages.take();
      let orderbook = orderbooks.take();
      if (message === undefined || orderbook === undefined) {
        if (batch.length > 0) {
          yield batch;
          batch = [];
        }
        message ??= await messages.next();
        orderbook ??= await orderbooks.next();
      }
      if (message === undefined || orderbook === undefined) {
        if (message !== orderbook) {
          const [ended, goesOn] = message === undefined ? ['message', 'orderbook'] : ['orderbook', 'message'];
          batch.push(rejected('schema', `${symbol}: ${pair.name.pairKey}: the ${ended} file ends at row ${row} but the ${goesOn} file goes on`, message ?? orderbook, symbol));
        }
        if (batch.length > 0) yield batch;
        return;
      }
      const mapped = mapper.map(message, orderbook, row);
      const flow = mapper.takeFlow();
      if (flow) batch.push(flow);
      if (mapped) batch.push(mapped);
    }
  } finally {
    messages.close();
    orderbooks.close();
  }
}

/**
 * LOBSTER files: `paths` holds the sample .zip, the message + orderbook CSV pair, or a folder
 * holding them (several pairs are read one after the other). One snapshot per event row
 * (`seq` = 0-based row, `ts` = `localTs` = event time), prices in dollars, padding dropped,
 * preceded by the row's flow: executions (types 4, 5) as trades, aggressor opposite the
 * executed order's side, and submissions/cancellations/deletions (1 to 3) as order events;
 * a trading halt emits a `disconnect` and no snapshots until trading resumes.
 * Missing or unpaired files throw; bad rows become `rejected` messages.
 */
export const lobster: FileFormat = {
  id: 'lobster',
  async *read(paths, options) {
    for await (const batch of readLobsterBatches(paths, options)) yield* batch;
  },
  readBatches: readLobsterBatches,
};

async function* readLobsterBatches(paths: readonly string[], options: MapperOptions & { symbol?: string }): AsyncGenerator<MarketMessage[]> {
  const archives: ZipArchive[] = [];
  try {
    for (const pair of await findPairs(paths, archives)) yield* readPairBatches(pair, options);
  } finally {
    for (const archive of archives) archive.close();
  }
}
