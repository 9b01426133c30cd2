// tardis.dev `book_snapshot_<depth>` CSV datasets (https://docs.tardis.dev/downloadable-csv-files):
// `exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,...`,
// timestamps in microseconds since epoch (UTC), cells left empty where the book is thinner.
import { snapshotOrRejected } from '../domain/book-check.js';
import type { BookSnapshot, Rejected, RejectReason } from '../domain/types.js';
import { rejected, sampleOf } from '../domain/types.js';
import { readLines } from './lines.js';
import type { FileFormat } from './types.js';

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

/** Reads the header; throws when it is not a book_snapshot header (the wrong file was given). */
export function tardisLayout(header: string, levels: number): TardisLayout {
  const names = header.split(',');
  const find = (name: string): number => {
    const index = names.indexOf(name);
    if (index === -1) throw new Error(`tardis-csv: header has no "${name}" column: ${sampleOf(header, 120)}`);
    return index;
  };
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
 * Maps data rows of one file. Keeps the cell boundaries and the level scratch between rows,
 * so a row costs only the cells it reads. Never throws: a bad row becomes a `rejected`.
 */
export class TardisRowMapper {
  /** cellStart[c] is where cell c begins; cellStart[c + 1] - 1 is where it ends. */
  private readonly cellStart: Int32Array;
  private readonly scratch: Float64Array;

  constructor(
    private readonly layout: TardisLayout,
    private readonly symbolOverride?: string,
  ) {
    this.cellStart = new Int32Array(layout.columnCount + 1);
    this.scratch = new Float64Array(2 * layout.levels);
  }

  map(line: string, lineNumber: number): BookSnapshot | Rejected {
    const layout = this.layout;
    const cellStart = this.cellStart;
    let cells = 1;
    cellStart[0] = 0;
    for (let at = line.indexOf(','); at !== -1; at = line.indexOf(',', at + 1)) {
      if (cells < layout.columnCount) cellStart[cells] = at + 1;
      cells++;
    }
    if (cells !== layout.columnCount) {
      return this.reject('schema', `line ${lineNumber}: expected ${layout.columnCount} columns, got ${cells}`, line, null);
    }
    cellStart[cells] = line.length + 1;

    const symbol = this.symbolOverride ?? this.text(line, layout.symbol);
    if (symbol.length === 0) return this.reject('schema', `line ${lineNumber} symbol: empty`, line, null);
    const timestamp = this.number(line, layout.timestamp);
    if (!Number.isFinite(timestamp)) return this.badCell(lineNumber, 'timestamp', layout.timestamp, line, symbol);
    const localTimestamp = this.number(line, layout.localTimestamp);
    if (!Number.isFinite(localTimestamp)) return this.badCell(lineNumber, 'local_timestamp', layout.localTimestamp, line, symbol);

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
    const scratch = this.scratch;
    let filled = 0;
    for (let i = 0; i < columns.length; i += 2) {
      const priceEmpty = this.isEmpty(columns[i]);
      const amountEmpty = this.isEmpty(columns[i + 1]);
      const level = i >> 1;
      if (priceEmpty && amountEmpty) continue;
      if (priceEmpty || amountEmpty) {
        const field = priceEmpty ? 'price' : 'amount';
        return this.reject('schema', `line ${lineNumber} ${name}[${level}].${field}: empty while the other cell of the level is not`, line, symbol);
      }
      if (filled !== i) {
        return this.reject('schema', `line ${lineNumber} ${name}[${level}].price: a level after an empty level ${name}[${filled >> 1}]`, line, symbol);
      }
      const price = this.number(line, columns[i]);
      if (!Number.isFinite(price)) return this.badCell(lineNumber, `${name}[${level}].price`, columns[i], line, symbol);
      const amount = this.number(line, columns[i + 1]);
      if (!Number.isFinite(amount)) return this.badCell(lineNumber, `${name}[${level}].amount`, columns[i + 1], line, symbol);
      scratch[filled] = price;
      scratch[filled + 1] = amount;
      filled += 2;
    }
    return scratch.slice(0, filled);
  }

  private isEmpty(column: number): boolean {
    return this.cellStart[column + 1] - 1 === this.cellStart[column];
  }

  private text(line: string, column: number): string {
    return line.slice(this.cellStart[column], this.cellStart[column + 1] - 1);
  }

  private number(line: string, column: number): number {
    const start = this.cellStart[column];
    const end = this.cellStart[column + 1] - 1;
    // Number() reads "" and blanks as 0 or ignores them; such cells are malformed here.
    if (end === start || line.charCodeAt(start) <= 32 || line.charCodeAt(end - 1) <= 32) return Number.NaN;
    return Number(line.slice(start, end));
  }

  private badCell(lineNumber: number, field: string, column: number, line: string, symbol: string): Rejected {
    return this.reject('schema', `line ${lineNumber} ${field}: expected a number, got ${JSON.stringify(this.text(line, column))}`, line, symbol);
  }

  private reject(reason: RejectReason, detail: string, line: string, symbol: string | null): Rejected {
    return rejected(reason, symbol ? `${symbol}: ${detail}` : detail, line, symbol);
  }
}

/**
 * tardis.dev book_snapshot CSV files, plain or gzip, each with its header. `ts` =
 * timestamp, `localTs` = local_timestamp (both µs in the file, ms here), `seq` undefined;
 * the symbol column names the symbol unless `options.symbol` is given.
 */
export const tardisCsv: FileFormat = {
  id: 'tardis-csv',
  async *read(paths, options) {
    for (const path of paths) {
      let mapper: TardisRowMapper | undefined;
      let lineNumber = 0;
      for await (const line of readLines(path)) {
        lineNumber++;
        if (!mapper) {
          mapper = new TardisRowMapper(tardisLayout(line, options.levels), options.symbol);
          continue;
        }
        yield mapper.map(line, lineNumber);
      }
    }
  },
};
