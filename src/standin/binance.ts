// The Binance spot stand-in's protocol, replaying a raw-frame recording of Binance's streams
// (developers.binance.com, spot "WebSocket Streams" and "Market data"):
// - `/stream?streams=a/b` sends `{"stream":..,"data":..}` envelopes, `/ws/<stream>` sends the
//   bare payload; `{"method":"SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS",...}` frames work on
//   both; at most 5 incoming messages per second and 1024 streams per connection.
// - `GET /api/v3/depth`, `/api/v3/ping`, `/api/v3/time` with Binance's error bodies
//   (`{"code":-1121,"msg":"Invalid symbol."}`).
// - The same three under USDⓈ-M futures' paths (`/fapi/v1/depth`, `/fapi/v1/ping`, `/fapi/v1/time`),
//   so a futures recording (diff events with `pu`) serves the `binance-usdm` venue: the frames go
//   out as recorded, and the REST book at the stream position has the lastUpdateId of the last
//   event sent, which the next event's `pu` names, as the futures sync rule wants.
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';
import { recordedLines, SkippedLines, StreamNames, timelineOf, type FeedServerLogger } from './recording.js';
import { entriesBySymbol, ReplayBook, type BookRules, type LevelBook, type RecordedLevel } from './replay-book.js';
import type { Session, SessionScript } from './session.js';
import { sendJson } from './replies.js';
import type { ConnectionHandler, StandInSetup, UpgradeRoute, VenueStandIn } from './server.js';

interface DepthDiffEvent {
  readonly kind: 'diff';
  readonly symbol: string;
  readonly firstUpdateId: number;
  readonly finalUpdateId: number;
  readonly bids: readonly RecordedLevel[];
  readonly asks: readonly RecordedLevel[];
}

interface SnapshotEvent {
  readonly kind: 'snapshot';
  /** Assigned after load: a bare REST body does not name its symbol. */
  symbol: string | null;
  readonly lastUpdateId: number;
  readonly bids: readonly RecordedLevel[];
  readonly asks: readonly RecordedLevel[];
}

type BookEvent = DepthDiffEvent | SnapshotEvent;

interface BinanceRecording {
  /** Per entry: the frame as recorded (envelope, or snapshot body). */
  readonly frames: string[];
  /** Per entry: the bare `data` payload sent on raw (`/ws/...`) connections. */
  readonly payloads: string[];
  /** Per entry: index into `streams`, or -1 for an inline REST snapshot (never streamed). */
  readonly streamIds: Int32Array;
  readonly bookEvents: (BookEvent | null)[];
  readonly streams: string[];
  /** Lower-case stream key (see `streamKey`) -> recorded stream ids. */
  readonly streamIdsByKey: Map<string, number[]>;
}

const decimalText = z.string().regex(/^\d+(\.\d+)?$/, { message: 'must be a decimal string' });
const levelSchema = z.tuple([decimalText, decimalText]);
const depthUpdateSchema = z.object({
  e: z.literal('depthUpdate'),
  s: z.string().min(1).max(64),
  U: z.number().int(),
  u: z.number().int(),
  b: z.array(levelSchema),
  a: z.array(levelSchema),
});
const restDepthSchema = z.object({
  lastUpdateId: z.number().int(),
  bids: z.array(levelSchema),
  asks: z.array(levelSchema),
});
const envelopeSchema = z.object({
  stream: z.string().min(1).max(200),
  data: z.record(z.string(), z.unknown()),
});
const methodFrameSchema = z.object({
  method: z.enum(['SUBSCRIBE', 'UNSUBSCRIBE', 'LIST_SUBSCRIPTIONS']),
  params: z.array(z.string().max(200)).max(2048).optional(),
  id: z.union([z.number().int(), z.string().max(36), z.null()]),
});

/** Binance's documented depth limit range; larger values are truncated to the maximum. */
const MAX_DEPTH_LIMIT = 5000;
const DEFAULT_DEPTH_LIMIT = 100;
/** Stream names as Binance spells them: `<symbol>@<channel>[@<option>]`. */
const STREAM_NAME = /^[a-z0-9._-]{1,64}@[a-z0-9@._-]{1,64}$/;

/**
 * The key two stream names share when they should receive the same recorded frames:
 * lower case, and the diff-depth update speed dropped, so `btcusdt@depth` and
 * `btcusdt@depth@100ms` both select a recorded `btcusdt@depth@100ms`.
 */
function streamKey(name: string): string {
  return name.toLowerCase().replace(/@depth@\d+ms$/, '@depth');
}

function levelsOf(raw: readonly (readonly [string, string])[]): RecordedLevel[] {
  return raw.map(([priceText, quantityText]) => ({ price: Number(priceText), texts: [priceText, quantityText], removes: Number(quantityText) === 0 }));
}

/** The envelope's `data` text exactly as recorded, when the envelope has the usual key order. */
function payloadOf(frame: string, stream: string, data: unknown): string {
  const prefix = `{"stream":${JSON.stringify(stream)},"data":`;
  if (frame.startsWith(prefix) && frame.endsWith('}')) return frame.slice(prefix.length, -1);
  return JSON.stringify(data);
}

async function loadRecording(paths: readonly string[], skipped: SkippedLines, logger: FeedServerLogger): Promise<{ recording: BinanceRecording; times: number[] }> {
  const frames: string[] = [];
  const payloads: string[] = [];
  const streamIdList: number[] = [];
  const times: number[] = [];
  const bookEvents: (BookEvent | null)[] = [];
  const streams = new StreamNames();

  for await (const line of recordedLines(paths, skipped)) {
    const { parsed, frame, localTs } = line;
    if (typeof parsed === 'object' && parsed !== null && 'lastUpdateId' in parsed) {
      const snapshot = restDepthSchema.safeParse(parsed);
      if (!snapshot.success) {
        skipped.skip(line, describeIssues(snapshot.error));
        continue;
      }
      frames.push(frame);
      payloads.push(frame);
      streamIdList.push(-1);
      times.push(localTs);
      bookEvents.push({ kind: 'snapshot', symbol: null, lastUpdateId: snapshot.data.lastUpdateId, bids: levelsOf(snapshot.data.bids), asks: levelsOf(snapshot.data.asks) });
      continue;
    }
    const envelope = envelopeSchema.safeParse(parsed);
    if (!envelope.success) {
      skipped.skip(line, describeIssues(envelope.error));
      continue;
    }
    const { stream, data } = envelope.data;
    let bookEvent: DepthDiffEvent | null = null;
    if (data.e === 'depthUpdate') {
      const diff = depthUpdateSchema.safeParse(data);
      if (!diff.success) {
        skipped.skip(line, `data.${describeIssues(diff.error)}`);
        continue;
      }
      bookEvent = {
        kind: 'diff',
        symbol: diff.data.s.toUpperCase(),
        firstUpdateId: diff.data.U,
        finalUpdateId: diff.data.u,
        bids: levelsOf(diff.data.b),
        asks: levelsOf(diff.data.a),
      };
    }
    frames.push(frame);
    payloads.push(payloadOf(frame, stream, data));
    streamIdList.push(streams.idOf(stream));
    times.push(localTs);
    bookEvents.push(bookEvent);
  }

  assignSnapshotSymbols(bookEvents, logger);

  const streamIdsByKey = new Map<string, number[]>();
  streams.names.forEach((name, id) => {
    const key = streamKey(name);
    const ids = streamIdsByKey.get(key);
    if (ids) ids.push(id);
    else streamIdsByKey.set(key, [id]);
  });
  return { recording: { frames, payloads, streamIds: Int32Array.from(streamIdList), bookEvents, streams: streams.names, streamIdsByKey }, times };
}

/**
 * A bare REST body names no symbol. It belongs to the symbol whose diff stream lines up
 * with it per Binance's sync rule (some diff has U <= lastUpdateId + 1 <= u); failing that,
 * to the only diff-depth symbol of the recording.
 */
function assignSnapshotSymbols(bookEvents: readonly (BookEvent | null)[], logger: FeedServerLogger): void {
  const diffs: DepthDiffEvent[] = [];
  for (const event of bookEvents) if (event?.kind === 'diff') diffs.push(event);
  const diffSymbols = new Set(diffs.map((diff) => diff.symbol));
  for (const event of bookEvents) {
    if (event?.kind !== 'snapshot') continue;
    const next = event.lastUpdateId + 1;
    const straddling = diffs.find((diff) => diff.firstUpdateId <= next && next <= diff.finalUpdateId);
    if (straddling) event.symbol = straddling.symbol;
    else if (diffSymbols.size === 1) event.symbol = diffs[0].symbol;
    else logger.warn({ lastUpdateId: event.lastUpdateId }, 'feed-server: no diff stream lines up with a recorded snapshot; it is ignored');
  }
}

/**
 * Binance's book rules: the first recorded snapshot is the base; a diff the book already
 * contains is dropped; a later recorded snapshot only matters if the book fell behind it.
 */
class BinanceBookRules implements BookRules<BookEvent> {
  lastUpdateId = 0;
  /** Diffs whose first id skipped past the book's (a gap inside the recording). */
  recordedGaps = 0;

  constructor(private readonly base: SnapshotEvent) {}

  start(book: LevelBook): void {
    this.load(book, this.base);
  }

  apply(book: LevelBook, event: BookEvent): void {
    if (event.kind === 'snapshot') {
      if (event !== this.base && event.lastUpdateId > this.lastUpdateId) {
        book.clear();
        this.load(book, event);
      }
      return;
    }
    if (event.finalUpdateId <= this.lastUpdateId) return;
    if (event.firstUpdateId > this.lastUpdateId + 1) this.recordedGaps++;
    book.apply('bid', event.bids);
    book.apply('ask', event.asks);
    this.lastUpdateId = event.finalUpdateId;
  }

  private load(book: LevelBook, snapshot: SnapshotEvent): void {
    book.apply('bid', snapshot.bids);
    book.apply('ask', snapshot.asks);
    this.lastUpdateId = snapshot.lastUpdateId;
  }
}

interface SymbolBook {
  readonly replay: ReplayBook<BookEvent>;
  readonly rules: BinanceBookRules;
}

function buildBooks(recording: BinanceRecording, logger: FeedServerLogger): Map<string, SymbolBook> {
  const books = new Map<string, SymbolBook>();
  for (const [symbol, entries] of entriesBySymbol(recording.bookEvents, (event) => event.symbol)) {
    const base = recording.bookEvents.find((event): event is SnapshotEvent => event?.kind === 'snapshot' && event.symbol === symbol);
    if (!base) {
      logger.warn({ symbol }, 'feed-server: diff stream without a recorded REST snapshot; GET /api/v3/depth will not serve it');
      continue;
    }
    const rules = new BinanceBookRules(base);
    books.set(symbol, { replay: new ReplayBook(entries, recording.bookEvents, rules), rules });
  }
  return books;
}

/** One client: its subscriptions and what it receives of each entry. */
class BinanceClient implements SessionScript {
  /** Stream names as the client asked for them (lower case), for LIST_SUBSCRIPTIONS. */
  readonly subscriptions = new Set<string>();
  /** Per recorded stream id: 1 when this client receives it. */
  private readonly wanted: Uint8Array;
  private wantedCount = 0;
  /** `stats.depthRequests` when this pass through the recording began. */
  private depthRequestsAtPassStart = -1;

  constructor(
    readonly session: Session,
    private readonly combined: boolean,
    private readonly recording: BinanceRecording,
    private readonly setup: StandInSetup,
  ) {
    this.wanted = new Uint8Array(recording.streams.length);
  }

  subscribe(names: readonly string[]): void {
    for (const name of names) this.subscriptions.add(name);
    this.refreshWanted();
  }

  unsubscribe(names: readonly string[]): void {
    for (const name of names) this.subscriptions.delete(name);
    this.refreshWanted();
  }

  holdAt(index: number, now: number, heldSince: number): boolean {
    const { stats, config } = this.setup;
    if (this.depthRequestsAtPassStart < 0) this.depthRequestsAtPassStart = stats.depthRequests;
    if (this.recording.streamIds[index] >= 0 || config.holdAtSnapshotMs <= 0) return false;
    const fetched = stats.depthRequests > this.depthRequestsAtPassStart;
    return !fetched && now - heldSince < config.holdAtSnapshotMs;
  }

  onLoop(): void {
    this.depthRequestsAtPassStart = this.setup.stats.depthRequests;
  }

  play(index: number): void {
    const streamId = this.recording.streamIds[index];
    if (streamId < 0 || this.wanted[streamId] === 0) return;
    if (this.recording.bookEvents[index] !== null && this.session.takeSkippedUpdate()) {
      this.setup.stats.skippedByFault++;
      return;
    }
    this.session.send(this.combined ? this.recording.frames[index] : this.recording.payloads[index]);
  }

  private refreshWanted(): void {
    this.wanted.fill(0);
    for (const name of this.subscriptions) {
      for (const id of this.recording.streamIdsByKey.get(streamKey(name)) ?? []) this.wanted[id] = 1;
    }
    this.wantedCount = 0;
    for (let i = 0; i < this.wanted.length; i++) this.wantedCount += this.wanted[i];
    this.session.setActive(this.wantedCount > 0);
  }
}

export async function loadBinanceStandIn(setup: StandInSetup): Promise<VenueStandIn> {
  const { logger, stats, config } = setup;
  const skipped = new SkippedLines(logger);
  const { recording, times } = await loadRecording(setup.paths, skipped, logger);
  const books = buildBooks(recording, logger);
  /** Insertion order is connection order: the last one is the most recent client. */
  const clients = new Map<Session, BinanceClient>();
  const errorBody = (msg: string) => ({ code: -1000, msg });

  const newestClient = (): BinanceClient | undefined => {
    let newest: BinanceClient | undefined;
    for (const client of clients.values()) newest = client;
    return newest;
  };

  const answerDepth = (query: URLSearchParams, res: ServerResponse): void => {
    const symbol = query.get('symbol');
    if (!symbol) {
      sendJson(res, 400, { code: -1102, msg: "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed." });
      return;
    }
    const book = books.get(symbol);
    if (!book) {
      sendJson(res, 400, { code: -1121, msg: 'Invalid symbol.' });
      return;
    }
    const limitText = query.get('limit');
    let limit = DEFAULT_DEPTH_LIMIT;
    if (limitText !== null) {
      limit = /^[0-9]{1,20}$/.test(limitText) ? Number(limitText) : Number.NaN;
      if (!(limit >= 1)) {
        sendJson(res, 400, {
          code: -1100,
          msg: `Illegal characters found in parameter 'limit'; legal range is '1..${MAX_DEPTH_LIMIT}', got ${JSON.stringify(limitText)}.`,
        });
        return;
      }
    }
    // Consistent with the newest client's stream position, so Binance's sync procedure works
    // for the client that just connected; with no client the book stays where it was. A client
    // held at the recorded snapshot gets exactly that snapshot: what the recorded session
    // fetched while its stream stood there (the diffs it had buffered then still apply).
    const newest = newestClient()?.session;
    if (newest?.holding) book.replay.resetToStart(newest.loop);
    else if (newest) book.replay.syncTo(newest.cursor, newest.loop);
    stats.depthRequests++;
    const depth = Math.min(limit, MAX_DEPTH_LIMIT);
    const side = (name: 'bid' | 'ask') => book.replay.book.top(name, depth).map((level) => [level.texts[0], level.texts[1]]);
    sendJson(res, 200, { lastUpdateId: book.rules.lastUpdateId, bids: side('bid'), asks: side('ask') });
  };

  const handleRequest = (url: URL, method: string, res: ServerResponse): void => {
    // Futures paths answer as spot's: the stand-in serves whatever market was recorded.
    const route = url.pathname.replace(/^\/fapi\/v1\//, '/api/v3/');
    if (route !== '/api/v3/depth' && route !== '/api/v3/ping' && route !== '/api/v3/time') {
      sendJson(res, 404, { code: -1000, msg: `Unknown endpoint ${url.pathname}.` });
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      sendJson(res, 405, { code: -1000, msg: `Method ${method} is not allowed on ${url.pathname}.` });
      return;
    }
    if (route === '/api/v3/ping') sendJson(res, 200, {});
    else if (route === '/api/v3/time') sendJson(res, 200, { serverTime: Date.now() });
    else answerDepth(url.searchParams, res);
  };

  const onClientMessage = (client: BinanceClient, text: string | null): void => {
    const session = client.session;
    const replyError = (code: number, msg: string, id: number | string | null) => session.reply(JSON.stringify({ error: { code, msg }, id }));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text ?? '');
    } catch {
      replyError(3, 'Invalid JSON: the frame is not a JSON object', null);
      return;
    }
    const request = methodFrameSchema.safeParse(parsed);
    if (!request.success) {
      const id = typeof parsed === 'object' && parsed !== null && 'id' in parsed ? (parsed as { id: unknown }).id : null;
      replyError(2, `Invalid request: ${describeIssues(request.error)}`, typeof id === 'number' || typeof id === 'string' ? id : null);
      return;
    }
    const { method, params, id } = request.data;
    if (method === 'LIST_SUBSCRIPTIONS') {
      session.reply(JSON.stringify({ result: [...client.subscriptions], id }));
      return;
    }
    const names = (params ?? []).map((name) => name.toLowerCase());
    const invalid = names.find((name) => !STREAM_NAME.test(name));
    if (invalid !== undefined) {
      replyError(2, `Invalid request: invalid stream name ${JSON.stringify(invalid)}`, id);
      return;
    }
    if (method === 'SUBSCRIBE') {
      const after = new Set([...client.subscriptions, ...names]).size;
      if (after > config.maxStreamsPerClient) {
        replyError(2, `Invalid request: too many streams: ${after} > ${config.maxStreamsPerClient}`, id);
        return;
      }
      // The reply goes out before the first frame of the new streams, as on Binance.
      session.reply(JSON.stringify({ result: null, id }));
      client.subscribe(names);
    } else {
      client.unsubscribe(names);
      session.reply(JSON.stringify({ result: null, id }));
    }
  };

  const routeUpgrade = (url: URL): UpgradeRoute => {
    let combined: boolean;
    let requested: string[];
    if (url.pathname === '/stream' || url.pathname === '/stream/') {
      combined = true;
      requested = (url.searchParams.get('streams') ?? '').split('/');
    } else if (url.pathname === '/ws' || url.pathname.startsWith('/ws/')) {
      combined = false;
      requested = url.pathname.slice('/ws'.length).split('/');
    } else {
      return { status: 404, message: `no websocket endpoint at ${url.pathname}; use /ws/<stream> or /stream?streams=<a>/<b>` };
    }
    const streams = requested.filter((name) => name.length > 0).map((name) => decodeURIComponent(name).toLowerCase());
    const invalid = streams.find((name) => !STREAM_NAME.test(name));
    if (invalid !== undefined) return { status: 400, message: `invalid stream name ${JSON.stringify(invalid)}` };
    if (new Set(streams).size > config.maxStreamsPerClient) {
      return { status: 400, message: `too many streams: ${streams.length} > ${config.maxStreamsPerClient}` };
    }
    return {
      detail: { combined, streams },
      open: (session): ConnectionHandler => {
        const client = new BinanceClient(session, combined, recording, setup);
        session.script = client;
        clients.set(session, client);
        if (streams.length > 0) client.subscribe(streams);
        return { onMessage: (text) => onClientMessage(client, text), onClose: () => clients.delete(session) };
      },
    };
  };

  const timeline = timelineOf(times);
  return {
    timeline,
    summary: { entries: recording.frames.length, streams: [...recording.streams], symbols: [...books.keys()], spanMs: timeline.spanMs, skippedLines: skipped.count },
    handleRequest,
    routeUpgrade,
    errorBody,
    reportAtClose: (log) => {
      for (const book of books.values()) {
        if (book.rules.recordedGaps > 0) log.warn({ gaps: book.rules.recordedGaps }, 'feed-server: the recording had update-id gaps');
      }
    },
  };
}
