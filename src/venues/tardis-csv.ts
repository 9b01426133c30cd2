// tardis.dev CSV datasets (https://docs.tardis.dev/downloadable-csv-files), two data types:
//   book_snapshot_<depth>  `exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,
//                          bids[0].price,...`, cells left empty where the book is thinner;
//   trades                 `exchange,symbol,timestamp,local_timestamp,id,side,price,amount`, side
//                          the liquidity taker's (buy, sell, or unknown), id empty where the
//                          exchange gives none.
//   incremental_book_L2    `exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount`,
//                          one row per changed level (side bid or ask, amount absolute, 0 deletes).
//                          Each daily file starts with a snapshot: the rows with is_snapshot=true.
//                          tardis.dev: "if is_snapshot is true and the previous row was not, a new
//                          snapshot starts: reset the book" (a recorder reconnect mid-day does it).
//                          Rows of one venue message share their timestamps; the book is emitted
//                          once per such group, and once per snapshot block, through the shared L2Book.
// Timestamps are microseconds since epoch (UTC); `local_timestamp` is the arrival time, and
// tardis.dev orders every file by it. Each file says by its header which type it is, so a book
// file and a trades file of one day replay together, merged by arrival as a live client saw them.
import { snapshotOrRejected } from '../domain/book-check.js';
import type { Aggressor, BookSnapshot, Disconnect, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { DepthBook } from './depth-book.js';
import { rejected, sampleOf } from '../domain/types.js';
import { readLines } from './lines.js';
import type { FileFormat, MapperOptions } from './types.js';

const LEVEL_COLUMN = /^(asks|bids)\[(\d+)\]\.(price|amount)$/;

/** Where each needed column sits, found from the header (never assumed by position). */
interface TardisLayout {
  readonly columnCount: number;
  readonly symbol: number;
  readonly timestamp: number;
  readonly localTimestamp: number;
  /** Column of asks[i].price at 2i, of asks[i].amount at 2i+1. */
  readonly asks: Int32Array;
  readonly bids: Int32Array;
  /** Levels read per side: min(the file's depth, the requested levels). */
  readonly levels: number;
}

/** Looks columns of `header` up by name; throws naming the missing one (the wrong file was given). */
function columnFinder(header: string, names: readonly string[], dataType: string): (name: string) => number {
  return (name) => {
    const index = names.indexOf(name);
    if (index === -1) throw new Error(`tardis-csv: ${dataType} header has no "${name}" column: ${sampleOf(header, 120)}`);
    return index;
  };
}

/** Reads the header; throws when it is not a book_snapshot header (the wrong file was given). */
export function tardisLayout(header: string, levels: number): TardisLayout {
  const names = header.split(',');
  const find = columnFinder(header, names, 'book_snapshot');
  const levelColumns = { asks: [] as number[], bids: [] as number[] };
  names.forEach((name, column) => {
    const match = LEVEL_COLUMN.exec(name);
    if (!match) return;
    const side = levelColumns[match[1] as 'asks' | 'bids'];
    side[2 * Number(match[2]) + (match[3] === 'price' ? 0 : 1)] = column;
  });
  const depth = Math.min(levelColumns.asks.length, levelColumns.bids.length) >> 1;
  if (depth === 0) throw new Error(`tardis-csv: header has no asks[i]/bids[i] price and amount columns: ${sampleOf(header, 120)}`);
  const wanted = Math.min(depth, Math.max(1, Math.floor(levels)));
  const side = (columns: number[], name: string): Int32Array => {
    const out = new Int32Array(2 * wanted);
    for (let i = 0; i < out.length; i++) {
      if (columns[i] === undefined) throw new Error(`tardis-csv: header has no ${name}[${i >> 1}].${i & 1 ? 'amount' : 'price'} column`);
      out[i] = columns[i];
    }
    return out;
  };
  return {
    columnCount: names.length,
    symbol: find('symbol'),
    timestamp: find('timestamp'),
    localTimestamp: find('local_timestamp'),
    asks: side(levelColumns.asks, 'asks'),
    bids: side(levelColumns.bids, 'bids'),
    levels: wanted,
  };
}

/**
 * The cells of one CSV line (no quoting: tardis.dev writes none), found once per line and read
 * by column. Reused from line to line, so a row costs only the cells it reads.
 */
class CsvCells {
  /** start[c] is where cell c begins; start[c + 1] - 1 is where it ends. */
  private readonly start: Int32Array;
  private line = '';

  constructor(readonly columnCount: number) {
    this.start = new Int32Array(columnCount + 1);
  }

  /** Splits `line`; returns how many cells it has (only a count equal to columnCount is usable). */
  split(line: string): number {
    const start = this.start;
    this.line = line;
    let cells = 1;
    start[0] = 0;
    for (let at = line.indexOf(','); at !== -1; at = line.indexOf(',', at + 1)) {
      if (cells < this.columnCount) start[cells] = at + 1;
      cells++;
    }
    if (cells === this.columnCount) start[cells] = line.length + 1;
    return cells;
  }

  isEmpty(column: number): boolean {
    return this.start[column + 1] - 1 === this.start[column];
  }

  text(column: number): string {
    return this.line.slice(this.start[column], this.start[column + 1] - 1);
  }

  number(column: number): number {
    const start = this.start[column];
    const end = this.start[column + 1] - 1;
    const line = this.line;
    // Number() reads "" and blanks as 0 or ignores them; such cells are malformed here.
    if (end === start || line.charCodeAt(start) <= 32 || line.charCodeAt(end - 1) <= 32) return Number.NaN;
    return Number(line.slice(start, end));
  }
}

/** Rejects a row, prefixing the symbol when it is known. */
function rejectRow(reason: RejectReason, detail: string, line: string, symbol: string | null): Rejected {
  return rejected(reason, symbol ? `${symbol}: ${detail}` : detail, line, symbol);
}

function badCell(cells: CsvCells, lineNumber: number, field: string, column: number, line: string, symbol: string): Rejected {
  return rejectRow('schema', `line ${lineNumber} ${field}: expected a number, got ${JSON.stringify(cells.text(column))}`, line, symbol);
}

/** The columns every tardis.dev data type starts with. */
interface RowHeadLayout {
  readonly columnCount: number;
  readonly symbol: number;
  readonly timestamp: number;
  readonly localTimestamp: number;
}

interface RowHead {
  readonly symbol: string;
  /** µs, as in the file. */
  readonly timestamp: number;
  readonly localTimestamp: number;
}

/** Splits `line` into `cells` and reads its symbol and both times, or rejects the row naming the cell. */
function readRowHead(cells: CsvCells, layout: RowHeadLayout, line: string, lineNumber: number, symbolOverride: string | undefined): RowHead | Rejected {
  const count = cells.split(line);
  if (count !== layout.columnCount) {
    return rejectRow('schema', `line ${lineNumber}: expected ${layout.columnCount} columns, got ${count}`, line, null);
  }
  const symbol = symbolOverride ?? cells.text(layout.symbol);
  if (symbol.length === 0) return rejectRow('schema', `line ${lineNumber} symbol: empty`, line, null);
  const timestamp = cells.number(layout.timestamp);
  if (!Number.isFinite(timestamp)) return badCell(cells, lineNumber, 'timestamp', layout.timestamp, line, symbol);
  const localTimestamp = cells.number(layout.localTimestamp);
  if (!Number.isFinite(localTimestamp)) return badCell(cells, lineNumber, 'local_timestamp', layout.localTimestamp, line, symbol);
  return { symbol, timestamp, localTimestamp };
}

/**
 * Maps data rows of one book_snapshot file. Keeps the cell boundaries and the level scratch
 * between rows. Never throws: a bad row becomes a `rejected`.
 */
export class TardisRowMapper {
  private readonly cells: CsvCells;
  private readonly scratch: Float64Array;

  constructor(
    private readonly layout: TardisLayout,
    private readonly symbolOverride?: string,
  ) {
    this.cells = new CsvCells(layout.columnCount);
    this.scratch = new Float64Array(2 * layout.levels);
  }

  map(line: string, lineNumber: number): BookSnapshot | Rejected {
    const layout = this.layout;
    const head = readRowHead(this.cells, layout, line, lineNumber, this.symbolOverride);
    if ('type' in head) return head;
    const { symbol, timestamp, localTimestamp } = head;

    const asks = this.side(line, lineNumber, layout.asks, 'asks', symbol);
    if (!(asks instanceof Float64Array)) return asks;
    const bids = this.side(line, lineNumber, layout.bids, 'bids', symbol);
    if (!(bids instanceof Float64Array)) return bids;

    const snapshot: BookSnapshot = {
      type: 'book_snapshot',
      symbol,
      ts: timestamp / 1000,
      localTs: localTimestamp / 1000,
      seq: undefined,
      bids,
      asks,
    };
    return snapshotOrRejected(snapshot, line);
  }

  /** Levels until the first empty one; an empty level followed by a filled one is malformed. */
  private side(line: string, lineNumber: number, columns: Int32Array, name: string, symbol: string): Float64Array | Rejected {
    const cells = this.cells;
    const scratch = this.scratch;
    let filled = 0;
    for (let i = 0; i < columns.length; i += 2) {
      const priceEmpty = cells.isEmpty(columns[i]);
      const amountEmpty = cells.isEmpty(columns[i + 1]);
      const level = i >> 1;
      if (priceEmpty && amountEmpty) continue;
      if (priceEmpty || amountEmpty) {
        const field = priceEmpty ? 'price' : 'amount';
        return rejectRow('schema', `line ${lineNumber} ${name}[${level}].${field}: empty while the other cell of the level is not`, line, symbol);
      }
      if (filled !== i) {
        return rejectRow('schema', `line ${lineNumber} ${name}[${level}].price: a level after an empty level ${name}[${filled >> 1}]`, line, symbol);
      }
      const price = cells.number(columns[i]);
      if (!Number.isFinite(price)) return badCell(cells, lineNumber, `${name}[${level}].price`, columns[i], line, symbol);
      const amount = cells.number(columns[i + 1]);
      if (!Number.isFinite(amount)) return badCell(cells, lineNumber, `${name}[${level}].amount`, columns[i + 1], line, symbol);
      scratch[filled] = price;
      scratch[filled + 1] = amount;
      filled += 2;
    }
    return scratch.slice(0, filled);
  }
}

/** Where each column of a trades file sits, found from the header. */
interface TardisTradeLayout {
  readonly columnCount: number;
  readonly symbol: number;
  readonly timestamp: number;
  readonly localTimestamp: number;
  readonly id: number;
  readonly side: number;
  readonly price: number;
  readonly amount: number;
}

/** Reads a trades header; throws when a column is missing (the wrong file was given). */
export function tardisTradeLayout(header: string): TardisTradeLayout {
  const names = header.split(',');
  const find = columnFinder(header, names, 'trades');
  return {
    columnCount: names.length,
    symbol: find('symbol'),
    timestamp: find('timestamp'),
    localTimestamp: find('local_timestamp'),
    id: find('id'),
    side: find('side'),
    price: find('price'),
    amount: find('amount'),
  };
}

/** The liquidity taker's side as tardis.dev writes it; null for anything else. */
function aggressorOf(side: string): Aggressor | null {
  switch (side) {
    case 'buy':
      return 1;
    case 'sell':
      return -1;
    case 'unknown':
      return 0;
    default:
      return null;
  }
}

/** Maps data rows of one trades file. Never throws: a bad row becomes a `rejected` naming the cell. */
export class TardisTradeRowMapper {
  private readonly cells: CsvCells;

  constructor(
    private readonly layout: TardisTradeLayout,
    private readonly symbolOverride?: string,
  ) {
    this.cells = new CsvCells(layout.columnCount);
  }

  map(line: string, lineNumber: number): Trade | Rejected {
    const layout = this.layout;
    const cells = this.cells;
    const head = readRowHead(cells, layout, line, lineNumber, this.symbolOverride);
    if ('type' in head) return head;
    const { symbol, timestamp, localTimestamp } = head;
    const side = cells.text(layout.side);
    const aggressor = aggressorOf(side);
    if (aggressor === null) {
      return rejectRow('schema', `line ${lineNumber} side: expected buy, sell or unknown, got ${JSON.stringify(side)}`, line, symbol);
    }
    const price = cells.number(layout.price);
    if (!Number.isFinite(price)) {
      const reason = Number.isNaN(price) ? 'schema' : 'non_finite';
      return rejectRow(reason, `line ${lineNumber} price: expected a finite number, got ${JSON.stringify(cells.text(layout.price))}`, line, symbol);
    }
    if (!(price > 0)) return rejectRow('schema', `line ${lineNumber} price: must be > 0, got ${JSON.stringify(cells.text(layout.price))}`, line, symbol);
    const amount = cells.number(layout.amount);
    if (!Number.isFinite(amount)) {
      const reason = Number.isNaN(amount) ? 'schema' : 'non_finite';
      return rejectRow(reason, `line ${lineNumber} amount: expected a finite number, got ${JSON.stringify(cells.text(layout.amount))}`, line, symbol);
    }
    if (!(amount > 0)) {
      return rejectRow('non_positive_size', `line ${lineNumber} amount: must be > 0, got ${JSON.stringify(cells.text(layout.amount))}`, line, symbol);
    }
    return {
      type: 'trade',
      symbol,
      ts: timestamp / 1000,
      localTs: localTimestamp / 1000,
      price,
      size: amount,
      aggressor,
      tradeId: cells.isEmpty(layout.id) ? undefined : cells.text(layout.id),
    };
  }
}

/** Where each column of an incremental_book_L2 file sits, found from the header. */
interface TardisIncrementalLayout extends RowHeadLayout {
  readonly isSnapshot: number;
  readonly side: number;
  readonly price: number;
  readonly amount: number;
}

/** Reads an incremental_book_L2 header; throws when a column is missing (the wrong file was given). */
export function tardisIncrementalLayout(header: string): TardisIncrementalLayout {
  const names = header.split(',');
  const find = columnFinder(header, names, 'incremental_book_L2');
  return {
    columnCount: names.length,
    symbol: find('symbol'),
    timestamp: find('timestamp'),
    localTimestamp: find('local_timestamp'),
    isSnapshot: find('is_snapshot'),
    side: find('side'),
    price: find('price'),
    amount: find('amount'),
  };
}

interface IncrementalBook {
  readonly depthBook: DepthBook;
  /** The last row of this symbol was a snapshot row: more of the same block may follow. */
  inSnapshot: boolean;
  /** A snapshot block was read: deltas before the first are ignored (no book to apply them to). */
  synced: boolean;
  /** A book went out since the last reset, so a new snapshot block mid-file marks a gap. */
  emitted: boolean;
}

const NOTHING: readonly MarketMessage[] = [];

/**
 * Maps data rows of one incremental_book_L2 file into books: each group of rows that shares
 * symbol, timestamp and local_timestamp (one venue message), or one whole snapshot block,
 * leaves as one snapshot of `levels` per side when the next group starts (or at `flush`).
 * Never throws: a bad row becomes a `rejected` naming the cell and is not applied.
 */
export class TardisIncrementalRowMapper {
  private readonly cells: CsvCells;
  private readonly books = new Map<string, IncrementalBook>();
  private readonly levels: number;
  // The group being read; its book goes out when a row of another group arrives.
  private pendingBook: IncrementalBook | null = null;
  private pendingSymbol = '';
  private pendingTimestamp = 0;
  private pendingLocalTimestamp = 0;
  private pendingIsSnapshot = false;
  private pendingLine = '';

  constructor(
    private readonly layout: TardisIncrementalLayout,
    levels: number,
    private readonly symbolOverride?: string,
  ) {
    this.cells = new CsvCells(layout.columnCount);
    this.levels = Math.max(1, Math.floor(levels) || 10);
  }

  map(line: string, lineNumber: number): readonly MarketMessage[] {
    const layout = this.layout;
    const cells = this.cells;
    const head = readRowHead(cells, layout, line, lineNumber, this.symbolOverride);
    if ('type' in head) return [head];
    const { symbol, timestamp, localTimestamp } = head;
    const snapshotText = cells.text(layout.isSnapshot);
    if (snapshotText !== 'true' && snapshotText !== 'false') {
      return [rejectRow('schema', `line ${lineNumber} is_snapshot: expected true or false, got ${JSON.stringify(snapshotText)}`, line, symbol)];
    }
    const isSnapshot = snapshotText === 'true';
    const sideText = cells.text(layout.side);
    if (sideText !== 'bid' && sideText !== 'ask') {
      return [rejectRow('schema', `line ${lineNumber} side: expected bid or ask, got ${JSON.stringify(sideText)}`, line, symbol)];
    }
    const price = cells.number(layout.price);
    if (!Number.isFinite(price) || !(price > 0)) {
      return [rejectRow('schema', `line ${lineNumber} price: expected a finite number > 0, got ${JSON.stringify(cells.text(layout.price))}`, line, symbol)];
    }
    const amount = cells.number(layout.amount);
    if (!Number.isFinite(amount) || amount < 0) {
      return [rejectRow('schema', `line ${lineNumber} amount: expected a finite number >= 0, got ${JSON.stringify(cells.text(layout.amount))}`, line, symbol)];
    }

    let out = NOTHING;
    const pending = this.pendingBook;
    const sameGroup =
      pending !== null &&
      this.pendingSymbol === symbol &&
      this.pendingIsSnapshot === isSnapshot &&
      // A snapshot block is one book even where its rows' times differ.
      (isSnapshot || (this.pendingTimestamp === timestamp && this.pendingLocalTimestamp === localTimestamp));
    if (pending !== null && !sameGroup) out = this.flush();

    let book = this.books.get(symbol);
    if (book === undefined) {
      book = { depthBook: new DepthBook(false), inSnapshot: false, synced: false, emitted: false };
      this.books.set(symbol, book);
    }
    if (isSnapshot && !book.inSnapshot) {
      if (book.emitted) {
        const disconnect: Disconnect = {
          type: 'disconnect',
          symbol,
          localTs: localTimestamp / 1000,
          reason: `line ${lineNumber}: a new snapshot block (the recorder reconnected); the book restarts from it`,
        };
        out = out.length === 0 ? [disconnect] : [...out, disconnect];
      }
      book.depthBook.reset();
      book.synced = true;
      book.emitted = false;
    }
    book.inSnapshot = isSnapshot;
    if (!book.synced) return out;
    book.depthBook.set(sideText, price, amount, '', '');
    this.pendingBook = book;
    this.pendingSymbol = symbol;
    this.pendingTimestamp = timestamp;
    this.pendingLocalTimestamp = localTimestamp;
    this.pendingIsSnapshot = isSnapshot;
    this.pendingLine = line;
    return out;
  }

  /** The book of the group read last, if any; called when a group ends and at the end of the file. */
  flush(): readonly MarketMessage[] {
    const book = this.pendingBook;
    if (book === null) return NOTHING;
    this.pendingBook = null;
    const message = book.depthBook.emit(this.pendingSymbol, this.pendingTimestamp / 1000, this.pendingLocalTimestamp / 1000, undefined, this.levels, this.pendingLine);
    if (message.type === 'book_snapshot') book.emitted = true;
    return [message];
  }
}

/**
 * A file's data type, told by its header: book levels make a book_snapshot file, is_snapshot an
 * incremental_book_L2 file, an id and a side a trades file.
 */
export function tardisDataType(header: string): 'book_snapshot' | 'incremental_book_L2' | 'trades' {
  const names = header.split(',');
  if (names.some((name) => LEVEL_COLUMN.test(name))) return 'book_snapshot';
  if (names.includes('is_snapshot') && names.includes('side') && names.includes('price') && names.includes('amount')) return 'incremental_book_L2';
  if (names.includes('side') && names.includes('price') && names.includes('amount')) return 'trades';
  throw new Error(
    `tardis-csv: header is neither book_snapshot_N (asks[i]/bids[i] columns), incremental_book_L2 (is_snapshot,side,price,amount) nor trades (id,side,price,amount): ${sampleOf(header, 120)}`,
  );
}

type TardisMessage = BookSnapshot | Trade | Rejected | Disconnect;

/** One file's messages in file order; its header picks the row mapper. */
async function* readTardisFile(path: string, options: MapperOptions & { symbol?: string }): AsyncGenerator<TardisMessage> {
  let mapRow: ((line: string, lineNumber: number) => TardisMessage) | undefined;
  let incremental: TardisIncrementalRowMapper | undefined;
  let lineNumber = 0;
  for await (const line of readLines(path)) {
    lineNumber++;
    if (incremental !== undefined) {
      yield* incremental.map(line, lineNumber) as readonly TardisMessage[];
      continue;
    }
    if (mapRow === undefined) {
      const dataType = tardisDataType(line);
      if (dataType === 'incremental_book_L2') {
        incremental = new TardisIncrementalRowMapper(tardisIncrementalLayout(line), options.levels, options.symbol);
      } else if (dataType === 'trades') {
        const mapper = new TardisTradeRowMapper(tardisTradeLayout(line), options.symbol);
        mapRow = (row, at) => mapper.map(row, at);
      } else {
        const mapper = new TardisRowMapper(tardisLayout(line, options.levels), options.symbol);
        mapRow = (row, at) => mapper.map(row, at);
      }
      continue;
    }
    yield mapRow(line, lineNumber);
  }
  if (incremental !== undefined) yield* incremental.flush() as readonly TardisMessage[];
}

/** When a message arrived; rejections carry no time and go out as soon as they are read. */
function arrival(message: TardisMessage): number {
  return message.type === 'rejected' ? -Infinity : message.localTs;
}

/**
 * Every file's messages merged by arrival (`local_timestamp`), each file in its own order, as
 * a live client received them: consecutive days of one type concatenate, a book file and a
 * trades file interleave. On equal arrival times the file given first goes first, so passing
 * the book file before the trades file never lets a trade reach a book it may have followed.
 */
async function* mergeByArrival(sources: AsyncGenerator<TardisMessage>[]): AsyncGenerator<MarketMessage> {
  const heads: (TardisMessage | undefined)[] = [];
  try {
    for (const source of sources) heads.push((await source.next()).value ?? undefined);
    for (;;) {
      let next = -1;
      for (let i = 0; i < heads.length; i++) {
        const head = heads[i];
        if (head !== undefined && (next === -1 || arrival(head) < arrival(heads[next]!))) next = i;
      }
      if (next === -1) return;
      yield heads[next]!;
      heads[next] = (await sources[next].next()).value ?? undefined;
    }
  } finally {
    await Promise.all(sources.map((source) => source.return(undefined)));
  }
}

/**
 * tardis.dev book_snapshot, incremental_book_L2 and trades CSV files, plain or gzip, each with its header, merged
 * by arrival. Books: `ts` = timestamp, `localTs` = local_timestamp (µs in the file, ms here),
 * `seq` undefined. Trades: the same times, id and taker side as written. The symbol column
 * names the symbol unless `options.symbol` is given.
 */
export const tardisCsv: FileFormat = {
  id: 'tardis-csv',
  read: (paths, options) => mergeByArrival(paths.map((path) => readTardisFile(path, options))),
};
