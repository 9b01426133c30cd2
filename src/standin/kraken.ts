// The Kraken websocket v1 stand-in (docs.kraken.com, "Spot WebSocket v1": systemStatus,
// subscribe, subscriptionStatus, book, trade, heartbeat, ping; and the v1 book checksum guide),
// replaying a recording of v1 channel messages:
// - any path; `systemStatus` on connect; `{"event":"subscribe"|"unsubscribe","pair":[..],
//   "subscription":{"name":"book","depth":N}|{"name":"trade"}}` answered per pair with a
//   `subscriptionStatus` (status subscribed, unsubscribed or error with Kraken's messages);
//   `{"event":"ping"}` answered with `pong`; `{"event":"heartbeat"}` after a second of silence.
// - `book-N`: a snapshot (`as`/`bs`) of the book at the client's position, then the recorded
//   updates with their `c` checksum. Only the recorded depth is served: an update for depth 10
//   does not carry what a depth-25 book needs.
// - `trade`: the last 50 recorded trades before the client's position as one message (Kraken's
//   snapshot on subscription), then the recorded trades.
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';
import { recordedLines, SkippedLines, timelineOf } from './recording.js';
import type { LevelBook, RecordedLevel } from './replay-book.js';
import { answerNoRest } from './replies.js';
import type { ConnectionHandler, StandInSetup, UpgradeRoute, VenueStandIn } from './server.js';
import type { Session } from './session.js';
import { StreamedBooks, StreamedClient, tradeEntry, type StreamedEntry } from './streamed-book.js';

const decimal = z.string().regex(/^\d+(\.\d+)?$/, { message: 'must be a decimal string' });
const bookLevel = z.union([z.tuple([decimal, decimal, decimal]), z.tuple([decimal, decimal, decimal, z.literal('r')])]);
const snapshotPayload = z.object({ as: z.array(bookLevel).optional(), bs: z.array(bookLevel).optional() });
const updatePayload = z.object({ a: z.array(bookLevel).optional(), b: z.array(bookLevel).optional(), c: z.string().optional() });
const tradeRow = z.array(z.unknown()).min(6).max(7);

const requestSchema = z.object({
  event: z.enum(['subscribe', 'unsubscribe', 'ping']),
  reqid: z.number().int().optional(),
  pair: z.array(z.string().min(1).max(32)).max(1024).optional(),
  subscription: z.object({ name: z.string().max(32), depth: z.number().int().optional() }).optional(),
});

const TRADE_SNAPSHOT_SIZE = 50;
const HEARTBEAT_MS = 1000;
const VALID_DEPTHS = [10, 25, 100, 500, 1000];

/** `[price, volume, timestamp]`, the "r" (republish) flag dropped: the book holds the level, not how it came. */
const levelsOf = (raw: readonly (readonly string[])[] | undefined): RecordedLevel[] =>
  (raw ?? []).map((level) => ({ price: Number(level[0]), texts: [level[0], level[1], level[2]], removes: Number(level[1]) === 0 }));

interface KrakenRecording {
  readonly entries: StreamedEntry[];
  readonly times: number[];
  /** Per entry of a trade message, its rows, for the snapshot of past trades. */
  readonly tradeRows: Map<number, unknown[]>;
  /** Per pair and channel name (`book-10`, `trade`), the recorded channel id. */
  readonly channelIds: Map<string, number>;
}

async function loadRecording(setup: StandInSetup, skipped: SkippedLines): Promise<KrakenRecording> {
  const entries: StreamedEntry[] = [];
  const times: number[] = [];
  const tradeRows = new Map<number, unknown[]>();
  const channelIds = new Map<string, number>();
  for await (const line of recordedLines(setup.paths, skipped)) {
    const message = line.parsed;
    // Event objects (systemStatus, subscriptionStatus, heartbeat, pong) were the recording
    // session's own conversation, not market data.
    if (!Array.isArray(message)) continue;
    if (message.length < 4 || message.length > 5 || typeof message[0] !== 'number') {
      skipped.skip(line, 'a channel message is [channelID, payload(s), channelName, pair]');
      continue;
    }
    const pair = message[message.length - 1];
    const channelName = message[message.length - 2];
    if (typeof pair !== 'string' || typeof channelName !== 'string') {
      skipped.skip(line, 'channel name and pair must be strings');
      continue;
    }
    if (!channelIds.has(`${pair} ${channelName}`)) channelIds.set(`${pair} ${channelName}`, message[0]);
    let entry: StreamedEntry;
    if (channelName === 'trade') {
      const rows = z.array(tradeRow).safeParse(message[1]);
      if (!rows.success) {
        skipped.skip(line, `[1].${describeIssues(rows.error)}`);
        continue;
      }
      tradeRows.set(entries.length, rows.data);
      entry = tradeEntry(pair, line.frame);
    } else {
      const depth = /^book-(\d{1,4})$/.exec(channelName);
      if (!depth) continue;
      const payloads = message.slice(1, message.length - 2);
      const snapshot = payloads.length === 1 ? snapshotPayload.strict().safeParse(payloads[0]) : null;
      if (snapshot?.success && (snapshot.data.as || snapshot.data.bs)) {
        entry = { kind: 'snapshot', symbol: pair, frame: line.frame, bids: levelsOf(snapshot.data.bs), asks: levelsOf(snapshot.data.as), depth: Number(depth[1]) };
      } else {
        const bids: RecordedLevel[] = [];
        const asks: RecordedLevel[] = [];
        let problem: string | null = null;
        for (const payload of payloads) {
          const update = updatePayload.strict().safeParse(payload);
          if (!update.success) {
            problem = describeIssues(update.error);
            break;
          }
          asks.push(...levelsOf(update.data.a));
          bids.push(...levelsOf(update.data.b));
        }
        if (problem !== null) {
          skipped.skip(line, problem);
          continue;
        }
        entry = { kind: 'update', symbol: pair, frame: line.frame, bids, asks, depth: Number(depth[1]) };
      }
    }
    entries.push(entry);
    times.push(line.localTs);
  }
  return { entries, times, tradeRows, channelIds };
}

class KrakenClient extends StreamedClient {
  constructor(
    session: Session,
    books: StreamedBooks,
    setup: StandInSetup,
    private readonly recording: KrakenRecording,
  ) {
    super(session, books, setup.stats);
    this.startHeartbeat(HEARTBEAT_MS, true, () => [JSON.stringify({ event: 'heartbeat' })]);
  }

  onMessage(text: string | null): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text ?? '');
    } catch {
      this.session.reply(JSON.stringify({ errorMessage: 'Malformed request', event: 'error' }));
      return;
    }
    const request = requestSchema.safeParse(parsed);
    if (!request.success) {
      this.session.reply(JSON.stringify({ errorMessage: `Malformed request: ${describeIssues(request.error)}`, event: 'error' }));
      return;
    }
    const { event, reqid, pair: pairs = [], subscription } = request.data;
    const withReqid = reqid === undefined ? {} : { reqid };
    if (event === 'ping') {
      this.session.reply(JSON.stringify({ event: 'pong', ...withReqid }));
      return;
    }
    if (!subscription) {
      this.session.reply(JSON.stringify({ errorMessage: 'Subscription field must be an object', event: 'error', ...withReqid }));
      return;
    }
    for (const pair of pairs) this.changeSubscription(event, pair, subscription, withReqid);
  }

  protected encodeSnapshot(pair: string, book: LevelBook): string {
    const depth = this.books.depths.get(pair) ?? 10;
    const side = (name: 'bid' | 'ask') => book.top(name, depth).map((level) => level.texts);
    return JSON.stringify([this.channelId(pair, `book-${depth}`), { as: side('ask'), bs: side('bid') }, `book-${depth}`, pair]);
  }

  private changeSubscription(event: 'subscribe' | 'unsubscribe', pair: string, subscription: { name: string; depth?: number }, withReqid: object): void {
    const status = (fields: object) => this.session.reply(JSON.stringify({ ...fields, event: 'subscriptionStatus', pair, ...withReqid }));
    const { name } = subscription;
    if (name !== 'book' && name !== 'trade') {
      status({ errorMessage: 'Subscription name invalid', status: 'error', subscription });
      return;
    }
    if (!this.books.has(pair)) {
      status({ errorMessage: `Currency pair not supported ${pair}`, status: 'error', subscription });
      return;
    }
    if (name === 'trade') {
      const channelName = 'trade';
      const conflict = this.subscriptionConflict(event === 'subscribe', pair, 'trades');
      if (conflict !== null) {
        status({ errorMessage: conflict, status: 'error', subscription });
        return;
      }
      status({ channelID: this.channelId(pair, channelName), channelName, status: event === 'subscribe' ? 'subscribed' : 'unsubscribed', subscription: { name } });
      if (event === 'subscribe') this.session.reply(this.tradeSnapshot(pair));
      this.follow(pair, 'trades', event === 'subscribe');
      return;
    }
    const recordedDepth = this.books.depths.get(pair) ?? 10;
    const depth = subscription.depth ?? 10;
    if (!VALID_DEPTHS.includes(depth) || depth !== recordedDepth) {
      status({ errorMessage: 'Subscription depth not supported', status: 'error', subscription });
      return;
    }
    const conflict = this.subscriptionConflict(event === 'subscribe', pair, 'book');
    if (conflict !== null) {
      status({ errorMessage: conflict, status: 'error', subscription });
      return;
    }
    const channelName = `book-${depth}`;
    status({ channelID: this.channelId(pair, channelName), channelName, status: event === 'subscribe' ? 'subscribed' : 'unsubscribed', subscription: { depth, name } });
    this.follow(pair, 'book', event === 'subscribe');
  }

  /** The last 50 recorded trades before the client's position, in one trade message. */
  private tradeSnapshot(pair: string): string {
    const rows: unknown[] = [];
    for (const index of this.books.tradeFramesBefore(pair, this.session.cursor, TRADE_SNAPSHOT_SIZE)) rows.push(...(this.recording.tradeRows.get(index) ?? []));
    return JSON.stringify([this.channelId(pair, 'trade'), rows.slice(-TRADE_SNAPSHOT_SIZE), 'trade', pair]);
  }

  private channelId(pair: string, channelName: string): number {
    return this.recording.channelIds.get(`${pair} ${channelName}`) ?? 0;
  }
}

export async function loadKrakenStandIn(setup: StandInSetup): Promise<VenueStandIn> {
  const skipped = new SkippedLines(setup.logger);
  const recording = await loadRecording(setup, skipped);
  const books = new StreamedBooks({ entries: recording.entries, times: recording.times });
  const timeline = timelineOf(recording.times);
  const errorBody = (message: string) => ({ error: [message] });
  let nextConnectionId = 1;
  const routeUpgrade = (url: URL): UpgradeRoute => ({
    detail: { path: url.pathname },
    open: (session): ConnectionHandler => {
      const client = new KrakenClient(session, books, setup, recording);
      session.script = client;
      session.reply(JSON.stringify({ connectionID: nextConnectionId++, event: 'systemStatus', status: 'online', version: '1.9.2' }));
      return { onMessage: (text) => client.onMessage(text), onClose: () => client.stopHeartbeat() };
    },
  });
  return {
    timeline,
    summary: { entries: recording.entries.length, streams: [...recording.channelIds.keys()], symbols: books.symbols, spanMs: timeline.spanMs, skippedLines: skipped.count },
    handleRequest: (url, method, res) => answerNoRest(url, method, res, errorBody),
    routeUpgrade,
    errorBody,
    reportAtClose: () => undefined,
  };
}
