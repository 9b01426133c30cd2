// The Kraken websocket v2 stand-in (docs.kraken.com, "Spot WebSocket v2": status, book,
// trade, heartbeat, ping; and the v2 book checksum guide), replaying a recording of v2 frames:
// - any path; a `status` update on connect; `{"method":"subscribe"|"unsubscribe","params":
//   {"channel":"book"|"trade","symbol":[..],"depth":N,"snapshot":bool},"req_id":..}` answered
//   per symbol (`{"method","result":{..},"success":true,"time_in","time_out"}`, or
//   `success: false` with Kraken's `error` text); `ping` answered with `pong`; a
//   `{"channel":"heartbeat"}` after a second of silence.
// - `book`: a snapshot with its checksum, of the book at the client's position (unless the
//   client asked for `snapshot: false`), then the recorded updates. Only the recorded depth is
//   served. Prices and quantities keep the lexemes the recording sent them with: the checksum
//   is over those digits.
// - `trade`: with `snapshot` (the default) the last 50 recorded trades first, then the
//   recorded updates.
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';
import { krakenBookChecksum } from '../venues/kraken.js';
import { recordedLines, SkippedLines, timelineOf } from './recording.js';
import type { LevelBook, RecordedLevel } from './replay-book.js';
import { answerNoRest } from './replies.js';
import type { ConnectionHandler, StandInSetup, UpgradeRoute, VenueStandIn } from './server.js';
import type { Session } from './session.js';
import { StreamedBooks, StreamedClient, tradeEntry, type StreamedEntry } from './streamed-book.js';

const requestSchema = z.object({
  method: z.enum(['subscribe', 'unsubscribe', 'ping']),
  req_id: z.number().int().optional(),
  params: z
    .object({
      channel: z.string().max(32),
      symbol: z.array(z.string().min(1).max(32)).max(1024),
      depth: z.number().int().optional(),
      snapshot: z.boolean().optional(),
    })
    .optional(),
});
const tradeItem = z.object({ symbol: z.string().min(1) }).passthrough();

const TRADE_SNAPSHOT_SIZE = 50;
const CHECKSUM_LEVELS = 10;
const HEARTBEAT_MS = 1000;
const VALID_DEPTHS = [10, 25, 100, 500, 1000];
/** The depth a v2 book message does not name: the one a recording of it was subscribed at. */
const RECORDED_DEPTH = 10;

/** A `{"price":..,"qty":..}` level as sent, lexemes kept (JSON.parse would make 0.10000000 into 0.1). */
const TIMESTAMP = /"timestamp"\s*:\s*"([^"]{1,40})"/;
const LEVEL = /\{\s*"price"\s*:\s*([0-9.]+)\s*,\s*"qty"\s*:\s*([0-9.]+)\s*\}/g;

/** The levels of the `"bids"` or `"asks"` array found at or after `from` in the frame, and where it ends. */
function levelsAt(frame: string, key: 'bids' | 'asks', from: number): { levels: RecordedLevel[]; end: number } | null {
  const keyAt = frame.indexOf(`"${key}"`, from);
  const open = keyAt < 0 ? -1 : frame.indexOf('[', keyAt);
  const close = open < 0 ? -1 : frame.indexOf(']', open);
  if (close < 0) return null;
  const levels: RecordedLevel[] = [];
  for (const match of frame.slice(open + 1, close).matchAll(LEVEL)) {
    levels.push({ price: Number(match[1]), texts: [match[1], match[2]], removes: Number(match[2]) === 0 });
  }
  return { levels, end: close + 1 };
}

interface V2Recording {
  readonly entries: StreamedEntry[];
  readonly times: number[];
  /** Per entry of a trade message, its parsed items, for the snapshot of past trades. */
  readonly tradeItems: Map<number, unknown[]>;
}

async function loadRecording(setup: StandInSetup, skipped: SkippedLines): Promise<V2Recording> {
  const entries: StreamedEntry[] = [];
  const times: number[] = [];
  const tradeItems = new Map<number, unknown[]>();
  for await (const line of recordedLines(setup.paths, skipped)) {
    const message = line.parsed as { channel?: unknown; type?: unknown; data?: unknown } | null;
    // Method responses, status and heartbeats were the recording session's own conversation.
    if (typeof message !== 'object' || message === null || !Array.isArray(message.data)) continue;
    if (message.channel === 'trade' && message.type === 'update') {
      const items = z.array(tradeItem).min(1).safeParse(message.data);
      if (!items.success) {
        skipped.skip(line, `data.${describeIssues(items.error)}`);
        continue;
      }
      tradeItems.set(entries.length, items.data);
      entries.push(tradeEntry(items.data[0].symbol, line.frame));
      times.push(line.localTs);
      continue;
    }
    if (message.channel !== 'book' || (message.type !== 'snapshot' && message.type !== 'update')) continue;
    // One recorded book message holds one symbol (as Kraken sends them); more would need splitting.
    const data = message.data as { symbol?: unknown }[];
    if (data.length !== 1 || typeof data[0]?.symbol !== 'string') {
      skipped.skip(line, 'data: expected one book entry with a symbol');
      continue;
    }
    const dataAt = line.frame.indexOf('"data"');
    const sides: Record<'bids' | 'asks', RecordedLevel[]> = { bids: [], asks: [] };
    let cursor = dataAt;
    let readable = true;
    for (const key of Object.keys(data[0])) {
      if (key !== 'bids' && key !== 'asks') continue;
      const found = levelsAt(line.frame, key, cursor);
      const count = (data[0] as Record<string, unknown[]>)[key]?.length ?? 0;
      if (found === null || found.levels.length !== count) {
        skipped.skip(line, `data[0].${key}: levels must be {"price": number, "qty": number}`);
        readable = false;
        break;
      }
      sides[key] = found.levels;
      cursor = found.end;
    }
    if (!readable) continue;
    entries.push({ kind: message.type, symbol: data[0].symbol, frame: line.frame, bids: sides.bids, asks: sides.asks, depth: RECORDED_DEPTH });
    times.push(line.localTs);
  }
  return { entries, times, tradeItems };
}

interface SymbolChannel {
  readonly method: 'subscribe' | 'unsubscribe';
  readonly channel: string;
  readonly symbol: string;
  readonly depth: number | undefined;
  readonly snapshot: boolean;
}

class KrakenV2Client extends StreamedClient {
  constructor(
    session: Session,
    books: StreamedBooks,
    setup: StandInSetup,
    private readonly recording: V2Recording,
  ) {
    super(session, books, setup.stats);
    this.startHeartbeat(HEARTBEAT_MS, true, () => [JSON.stringify({ channel: 'heartbeat' })]);
  }

  onMessage(text: string | null): void {
    const timeIn = new Date().toISOString();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text ?? '');
    } catch {
      this.session.reply(JSON.stringify({ error: 'Malformed request', success: false, time_in: timeIn, time_out: new Date().toISOString() }));
      return;
    }
    const request = requestSchema.safeParse(parsed);
    if (!request.success) {
      this.session.reply(JSON.stringify({ error: `Malformed request: ${describeIssues(request.error)}`, success: false, time_in: timeIn, time_out: new Date().toISOString() }));
      return;
    }
    const { method, req_id: reqId, params } = request.data;
    const withReqId = reqId === undefined ? {} : { req_id: reqId };
    if (method === 'ping') {
      this.session.reply(JSON.stringify({ method: 'pong', ...withReqId, time_in: timeIn, time_out: new Date().toISOString() }));
      return;
    }
    if (!params) {
      this.session.reply(JSON.stringify({ error: 'Missing params', method, success: false, ...withReqId, time_in: timeIn, time_out: new Date().toISOString() }));
      return;
    }
    for (const symbol of params.symbol) {
      this.changeSubscription({ method, channel: params.channel, symbol, depth: params.depth, snapshot: params.snapshot ?? true }, timeIn, withReqId);
    }
  }

  /** The snapshot sent before the recorded update at `index` carries that update's time, the book's newest. */
  protected encodeSnapshot(symbol: string, book: LevelBook, index: number): string {
    const timestamp = TIMESTAMP.exec(this.books.recording.entries[index].frame)?.[1];
    const asks = book.top('ask', RECORDED_DEPTH);
    const bids = book.top('bid', RECORDED_DEPTH);
    const top = (levels: RecordedLevel[], part: 0 | 1) => levels.slice(0, CHECKSUM_LEVELS).map((level) => level.texts[part]);
    const checksum = krakenBookChecksum(top(asks, 0), top(asks, 1), top(bids, 0), top(bids, 1));
    // Written by hand so the lexemes go out as recorded; JSON.stringify would print 0.1.
    const side = (levels: RecordedLevel[]) => `[${levels.map((level) => `{"price":${level.texts[0]},"qty":${level.texts[1]}}`).join(',')}]`;
    const time = timestamp === undefined ? '' : `,"timestamp":${JSON.stringify(timestamp)}`;
    return `{"channel":"book","type":"snapshot","data":[{"symbol":${JSON.stringify(symbol)},"bids":${side(bids)},"asks":${side(asks)},"checksum":${checksum}${time}}]}`;
  }

  private changeSubscription(request: SymbolChannel, timeIn: string, withReqId: object): void {
    const { method, channel, symbol } = request;
    const answer = (fields: object) => this.session.reply(JSON.stringify({ method, ...fields, ...withReqId, time_in: timeIn, time_out: new Date().toISOString() }));
    const fail = (error: string) => answer({ error, success: false, symbol });
    if (channel !== 'book' && channel !== 'trade') return fail(`Channel ${channel} is not supported here`);
    if (!this.books.has(symbol)) return fail('Currency pair not supported');
    const on = method === 'subscribe';
    if (channel === 'trade') {
      const conflict = this.subscriptionConflict(on, symbol, 'trades');
      if (conflict !== null) return fail(conflict);
      answer({ result: on ? { channel, snapshot: request.snapshot, symbol } : { channel, symbol }, success: true });
      if (on && request.snapshot) this.session.reply(this.tradeSnapshot(symbol));
      this.follow(symbol, 'trades', on);
      return;
    }
    const depth = request.depth ?? RECORDED_DEPTH;
    if (!VALID_DEPTHS.includes(depth) || depth !== RECORDED_DEPTH) return fail('Subscription depth not supported');
    const conflict = this.subscriptionConflict(on, symbol, 'book');
    if (conflict !== null) return fail(conflict);
    answer({ result: on ? { channel, depth, snapshot: request.snapshot, symbol } : { channel, depth, symbol }, success: true });
    this.follow(symbol, 'book', on);
    // Without a snapshot the client asked to start from the updates alone.
    if (on && !request.snapshot) this.skipSnapshot(symbol);
  }

  private skipSnapshot(symbol: string): void {
    const subscription = this.subscriptions.get(symbol);
    if (subscription) subscription.snapshotDue = false;
  }

  /** The last 50 recorded trades before the client's position, as Kraken's trade snapshot. */
  private tradeSnapshot(symbol: string): string {
    const items: unknown[] = [];
    for (const index of this.books.tradeFramesBefore(symbol, this.session.cursor, TRADE_SNAPSHOT_SIZE)) items.push(...(this.recording.tradeItems.get(index) ?? []));
    return JSON.stringify({ channel: 'trade', type: 'snapshot', data: items.slice(-TRADE_SNAPSHOT_SIZE) });
  }
}

export async function loadKrakenV2StandIn(setup: StandInSetup): Promise<VenueStandIn> {
  const skipped = new SkippedLines(setup.logger);
  const recording = await loadRecording(setup, skipped);
  const books = new StreamedBooks({ entries: recording.entries, times: recording.times });
  const timeline = timelineOf(recording.times);
  const errorBody = (message: string) => ({ error: message, success: false });
  let nextConnectionId = 1;
  const routeUpgrade = (url: URL): UpgradeRoute => ({
    detail: { path: url.pathname },
    open: (session): ConnectionHandler => {
      const client = new KrakenV2Client(session, books, setup, recording);
      session.script = client;
      session.reply(JSON.stringify({ channel: 'status', type: 'update', data: [{ api_version: 'v2', connection_id: nextConnectionId++, system: 'online', version: '2.0.0' }] }));
      return { onMessage: (text) => client.onMessage(text), onClose: () => client.stopHeartbeat() };
    },
  });
  return {
    timeline,
    summary: { entries: recording.entries.length, streams: books.streamNames('book', 'trade'), symbols: books.symbols, spanMs: timeline.spanMs, skippedLines: skipped.count },
    handleRequest: (url, method, res) => answerNoRest(url, method, res, errorBody),
    routeUpgrade,
    errorBody,
    reportAtClose: () => undefined,
  };
}
