// A test-only venue ("seqdiff") and a local exchange that speaks it, on 127.0.0.1 with
// ephemeral ports. The venue follows the shape of Binance's diff-depth protocol: diffs carry
// first/last update ids, a REST snapshot carries the id it is valid at, and a client must
// buffer diffs, apply the snapshot, then continue only from snapshot+1 (else resync). With
// `streamSnapshots` it instead behaves like Kraken/Coinbase: the stream sends a snapshot on
// subscribe and resync means unsubscribe + subscribe.
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { snapshotOrRejected } from '../../src/domain/book-check.js';
import type { MarketMessage } from '../../src/domain/types.js';
import { sampleOf } from '../../src/domain/types.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from '../../src/venues/types.js';

type Level = [number, number];

interface DiffFrame {
  type: 'diff';
  symbol: string;
  first: number;
  last: number;
  bids: Level[];
  asks: Level[];
}

interface SnapshotBody {
  seq: number;
  bids: Level[];
  asks: Level[];
}

// ---------------------------------------------------------------------------------------
// The venue.

export function seqDiffVenue(streamSnapshots: boolean): Venue {
  const live: LiveProtocol = {
    venue: 'seqdiff',
    connectUrl: (base) => `${base}/feed`,
    subscribeFrames: (symbols) => [JSON.stringify({ op: 'subscribe', symbols })],
    unsubscribeFrames: (symbols) => [JSON.stringify({ op: 'unsubscribe', symbols })],
    resyncFrames: (symbols) => [JSON.stringify({ op: 'unsubscribe', symbols }), JSON.stringify({ op: 'subscribe', symbols })],
    pingFrame: () => JSON.stringify({ op: 'ping' }),
    snapshotUrl: (base, symbol) => (streamSnapshots ? null : `${base}/depth?symbol=${encodeURIComponent(symbol)}`),
  };
  return { id: 'seqdiff', live, createMapper: (options) => new SeqDiffMapper(options) };
}

interface SymbolBook {
  bids: Map<number, number>;
  asks: Map<number, number>;
  /** Last applied update id; NaN while the book waits for a snapshot. */
  seq: number;
  buffered: DiffFrame[];
  ts: number;
}

class SeqDiffMapper implements FrameMapper {
  private readonly books = new Map<string, SymbolBook>();
  private resyncRequests: string[] = [];

  constructor(private readonly options: MapperOptions) {
    this.reset();
  }

  map(frame: string, localTs: number): MarketMessage[] {
    let parsed: { type?: string; symbol?: string };
    try {
      parsed = JSON.parse(frame);
    } catch {
      return [{ type: 'rejected', reason: 'malformed_json', detail: 'frame: not JSON', sample: sampleOf(frame), symbol: null }];
    }
    if (parsed.type === 'pong') return [];
    const book = this.books.get(parsed.symbol ?? '');
    if (book === undefined) {
      return [{ type: 'rejected', reason: 'unknown_symbol', detail: `symbol: not subscribed, got ${parsed.symbol}`, sample: sampleOf(frame), symbol: null }];
    }
    const symbol = parsed.symbol as string;
    if (parsed.type === 'snapshot') {
      return [this.load(symbol, book, parsed as unknown as SnapshotBody, localTs)];
    }
    const diff = parsed as unknown as DiffFrame;
    if (Number.isNaN(book.seq)) {
      book.buffered.push(diff);
      return [];
    }
    return this.applyDiff(symbol, book, diff, localTs);
  }

  mapRestSnapshot(symbol: string, body: string, localTs: number): MarketMessage[] {
    const book = this.books.get(symbol);
    if (book === undefined) return [];
    const snapshot = JSON.parse(body) as SnapshotBody;
    const pending = book.buffered.filter((diff) => diff.last > snapshot.seq);
    book.buffered = [];
    if (pending.length > 0 && pending[0].first > snapshot.seq + 1) {
      this.resyncRequests.push(symbol);
      book.buffered = pending;
      return [];
    }
    const out: MarketMessage[] = [this.load(symbol, book, snapshot, localTs)];
    for (const diff of pending) out.push(...this.applyDiff(symbol, book, diff, localTs));
    return out;
  }

  takeResyncRequests(): string[] {
    const requests = this.resyncRequests;
    this.resyncRequests = [];
    return requests;
  }

  reset(): void {
    this.books.clear();
    this.resyncRequests = [];
    for (const symbol of this.options.symbols ?? []) {
      this.books.set(symbol, { bids: new Map(), asks: new Map(), seq: Number.NaN, buffered: [], ts: 0 });
    }
  }

  private load(symbol: string, book: SymbolBook, snapshot: SnapshotBody, localTs: number): MarketMessage {
    book.bids = new Map(snapshot.bids);
    book.asks = new Map(snapshot.asks);
    book.seq = snapshot.seq;
    return this.emit(symbol, book, localTs);
  }

  private applyDiff(symbol: string, book: SymbolBook, diff: DiffFrame, localTs: number): MarketMessage[] {
    if (diff.last <= book.seq) return [];
    if (diff.first > book.seq + 1) {
      const reason = `sequence gap: expected ${book.seq + 1}, got ${diff.first}`;
      book.seq = Number.NaN;
      book.buffered = [];
      this.resyncRequests.push(symbol);
      return [{ type: 'disconnect', symbol, localTs, reason }];
    }
    for (const [price, size] of diff.bids) {
      if (size === 0) book.bids.delete(price);
      else book.bids.set(price, size);
    }
    for (const [price, size] of diff.asks) {
      if (size === 0) book.asks.delete(price);
      else book.asks.set(price, size);
    }
    book.seq = diff.last;
    return [this.emit(symbol, book, localTs)];
  }

  private emit(symbol: string, book: SymbolBook, localTs: number): MarketMessage {
    const bids = flatten(
      [...book.bids].sort((a, b) => b[0] - a[0]),
      this.options.levels,
    );
    const asks = flatten(
      [...book.asks].sort((a, b) => a[0] - b[0]),
      this.options.levels,
    );
    return snapshotOrRejected({ type: 'book_snapshot', symbol, ts: localTs, localTs, seq: book.seq, bids, asks });
  }
}

function flatten(levels: Level[], count: number): Float64Array {
  const n = Math.min(count, levels.length);
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i += 1) {
    out[2 * i] = levels[i][0];
    out[2 * i + 1] = levels[i][1];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The exchange.

const LEVELS_PER_SIDE = 5;

interface ExchangeBook {
  seq: number;
  bids: Map<number, number>;
  asks: Map<number, number>;
  /** Best bid and ask [price, size] after each update id, to check what the client shows. */
  history: Map<number, { bestBid: Level; bestAsk: Level }>;
}

interface ClientConnection {
  socket: WebSocket;
  subscribed: Set<string>;
  stalled: boolean;
}

export interface ClientFrame {
  op: string;
  symbols?: string[];
}

/** A local venue: websocket feed at `wsUrl`, REST snapshots at `restUrl`. */
export class FakeExchange extends EventEmitter {
  readonly books = new Map<string, ExchangeBook>();
  readonly clientFrames: ClientFrame[] = [];
  readonly restRequests: string[] = [];
  wsPings = 0;
  connectionCount = 0;
  /** Answer this many REST requests with HTTP 500 before serving snapshots again. */
  failRestRequests = 0;
  /** Answer this many REST requests with this status and headers (a 429 with Retry-After, say). */
  restRefusal: { count: number; status: number; headers: Record<string, string> } | null = null;
  /** Leave this many REST requests unanswered (a venue that hangs). */
  stallRestRequests = 0;
  /** When each REST request arrived (Date.now). */
  readonly restRequestTimes: number[] = [];
  private readonly connections = new Set<ClientConnection>();
  private readonly gapNext = new Set<string>();
  private ticker: NodeJS.Timeout | undefined;
  // Kept so the URLs stay valid after stop(): a client may go on dialling a dead venue.
  private readonly wsPort: number;
  private readonly restPort: number;

  private constructor(
    private readonly wss: WebSocketServer,
    private readonly http: Server,
    private readonly streamSnapshots: boolean,
    symbols: readonly string[],
  ) {
    super();
    this.wsPort = (wss.address() as AddressInfo).port;
    this.restPort = (http.address() as AddressInfo).port;
    symbols.forEach((symbol, index) => {
      const base = 100 * (index + 1);
      const bids = new Map<number, number>();
      const asks = new Map<number, number>();
      for (let i = 0; i < LEVELS_PER_SIDE; i += 1) {
        bids.set(base - 0.5 - i, 1 + i);
        asks.set(base + 0.5 + i, 1 + i);
      }
      const book: ExchangeBook = { seq: 1000, bids, asks, history: new Map() };
      this.record(book);
      this.books.set(symbol, book);
    });
    wss.on('connection', (socket) => this.onConnection(socket));
    http.on('request', (request, response) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const symbol = url.searchParams.get('symbol') ?? '';
      this.restRequests.push(symbol);
      this.restRequestTimes.push(Date.now());
      this.emit('rest', symbol);
      if (this.stallRestRequests > 0) {
        this.stallRestRequests -= 1;
        return;
      }
      if (this.restRefusal && this.restRefusal.count > 0) {
        this.restRefusal.count -= 1;
        response.writeHead(this.restRefusal.status, { 'content-type': 'application/json', ...this.restRefusal.headers });
        response.end(JSON.stringify({ code: -1003, msg: 'Too many requests' }));
        return;
      }
      const book = this.books.get(symbol);
      if (this.failRestRequests > 0 || book === undefined) {
        if (this.failRestRequests > 0) this.failRestRequests -= 1;
        response.writeHead(book === undefined ? 400 : 500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ code: -1, msg: 'unavailable' }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(this.snapshotBody(book)));
    });
  }

  static async start(symbols: readonly string[], options: { streamSnapshots?: boolean } = {}): Promise<FakeExchange> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const http = createServer();
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    return new FakeExchange(wss, http, options.streamSnapshots ?? false, symbols);
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  get restUrl(): string {
    return `http://127.0.0.1:${this.restPort}`;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** Sends one update per symbol to every subscribed, non-stalled connection. */
  tick(): void {
    for (const [symbol, book] of this.books) {
      const first = book.seq + 1;
      const frame = this.advance(book);
      if (this.gapNext.delete(symbol)) continue;
      const text = JSON.stringify({ type: 'diff', symbol, first, last: book.seq, ...frame });
      for (const connection of this.connections) {
        if (!connection.stalled && connection.subscribed.has(symbol)) connection.socket.send(text);
      }
    }
  }

  /** Sends a raw text frame to every connection. */
  sendRaw(text: string): void {
    for (const connection of this.connections) connection.socket.send(text);
  }

  startTicking(intervalMs: number): void {
    this.stopTicking();
    this.ticker = setInterval(() => this.tick(), intervalMs);
  }

  stopTicking(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  /** The next update of `symbol` is applied here but never sent: clients see a gap. */
  skipNextUpdate(symbol: string): void {
    this.gapNext.add(symbol);
  }

  /** Current connections stay open but receive nothing more. */
  stallConnections(): void {
    for (const connection of this.connections) connection.stalled = true;
  }

  /** Kills every connection without a closing handshake, as a crashed upstream would. */
  dropConnections(): void {
    for (const connection of this.connections) connection.socket.terminate();
  }

  async stop(): Promise<void> {
    this.stopTicking();
    for (const connection of this.connections) connection.socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private onConnection(socket: WebSocket): void {
    const connection: ClientConnection = { socket, subscribed: new Set(), stalled: false };
    this.connections.add(connection);
    this.connectionCount += 1;
    socket.on('ping', () => {
      this.wsPings += 1;
      this.emit('ws-ping');
    });
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as ClientFrame;
      this.clientFrames.push(frame);
      for (const symbol of frame.symbols ?? []) {
        if (frame.op === 'subscribe') {
          connection.subscribed.add(symbol);
          const book = this.books.get(symbol);
          if (this.streamSnapshots && book) socket.send(JSON.stringify({ type: 'snapshot', symbol, ...this.snapshotBody(book) }));
        } else if (frame.op === 'unsubscribe') {
          connection.subscribed.delete(symbol);
        }
      }
      if (frame.op === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
      this.emit('client-frame', frame);
    });
    socket.on('close', () => {
      this.connections.delete(connection);
      this.emit('client-closed');
    });
    this.emit('connection');
  }

  private advance(book: ExchangeBook): { bids: Level[]; asks: Level[] } {
    book.seq += 1;
    const seq = book.seq;
    const bidPrice = [...book.bids.keys()][seq % LEVELS_PER_SIDE];
    const askPrice = [...book.asks.keys()][(seq * 3) % LEVELS_PER_SIDE];
    const bidSize = 0.5 + ((seq * 7) % 13) / 4;
    const askSize = 0.25 + ((seq * 5) % 11) / 4;
    book.bids.set(bidPrice, bidSize);
    book.asks.set(askPrice, askSize);
    this.record(book);
    return { bids: [[bidPrice, bidSize]], asks: [[askPrice, askSize]] };
  }

  private record(book: ExchangeBook): void {
    const bestBidPrice = Math.max(...book.bids.keys());
    const bestAskPrice = Math.min(...book.asks.keys());
    book.history.set(book.seq, {
      bestBid: [bestBidPrice, book.bids.get(bestBidPrice) as number],
      bestAsk: [bestAskPrice, book.asks.get(bestAskPrice) as number],
    });
  }

  private snapshotBody(book: ExchangeBook): SnapshotBody {
    return { seq: book.seq, bids: [...book.bids], asks: [...book.asks] };
  }
}

/** Polls `condition` until true; fails with `what` after `timeoutMs` (generous: CI is slow). */
export async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Drains an async iterable into an array in the background. */
export function collect<T>(source: AsyncIterable<T>): { items: T[]; done: Promise<void> } {
  const items: T[] = [];
  const done = (async () => {
    for await (const item of source) items.push(item);
  })();
  return { items, done };
}
