// The Coinbase Exchange websocket feed stand-in (docs.cdp.coinbase.com, Exchange "WebSocket
// Feed": overview and channels), replaying a recording of that feed's frames:
// - one endpoint (any path), `{"type":"subscribe"|"unsubscribe","product_ids":[..],"channels":[..]}`
//   with channels as names or `{"name","product_ids"}` objects; every request is answered with a
//   `subscriptions` message listing what the connection now follows, a bad one with
//   `{"type":"error","message":"Failed to subscribe","reason":..}`.
// - `level2` and `level2_batch` (the same messages; the real `level2` wants authentication,
//   which a stand-in does not check): a `snapshot` of the full book at the client's position in
//   the recording, then the recorded `l2update`s. level2 carries no sequence numbers, so a
//   client cannot see an update it missed (the `skipBookUpdates` fault shows exactly that).
// - `matches`: `last_match` (the latest recorded trade before the client's position) first,
//   then the recorded `match`es.
// - `heartbeat`: once a second per product, with the last recorded trade id and sequence.
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';
import { recordedLines, SkippedLines, timelineOf } from './recording.js';
import type { LevelBook, RecordedLevel } from './replay-book.js';
import { answerNoRest } from './replies.js';
import type { ConnectionHandler, StandInSetup, UpgradeRoute, VenueStandIn } from './server.js';
import type { Session } from './session.js';
import { StreamedBooks, StreamedClient, tradeEntry, type StreamedEntry } from './streamed-book.js';

const decimal = z.string().regex(/^\d+(\.\d+)?$/, { message: 'must be a decimal string' });
const product = z.string().min(1).max(64);
const snapshotSchema = z.object({ type: z.literal('snapshot'), product_id: product, bids: z.array(z.tuple([decimal, decimal])), asks: z.array(z.tuple([decimal, decimal])) });
const updateSchema = z.object({ type: z.literal('l2update'), product_id: product, changes: z.array(z.tuple([z.enum(['buy', 'sell']), decimal, decimal])) });
const matchSchema = z.object({
  type: z.enum(['match', 'last_match']),
  product_id: product,
  trade_id: z.number().int().nonnegative(),
  sequence: z.number().int().nonnegative().optional(),
});

const channelSchema = z.union([z.string().max(64), z.object({ name: z.string().max(64), product_ids: z.array(product).max(1024).optional() })]);
const requestSchema = z.object({
  type: z.enum(['subscribe', 'unsubscribe']),
  product_ids: z.array(product).max(1024).optional(),
  channels: z.array(channelSchema).min(1).max(16),
});

const BOOK_CHANNELS = ['level2', 'level2_batch'] as const;
type Channel = (typeof BOOK_CHANNELS)[number] | 'matches' | 'heartbeat';
const CHANNELS: readonly Channel[] = [...BOOK_CHANNELS, 'matches', 'heartbeat'];
const HEARTBEAT_MS = 1000;

const levels = (raw: readonly (readonly [string, string])[]): RecordedLevel[] =>
  raw.map(([price, size]) => ({ price: Number(price), texts: [price, size], removes: Number(size) === 0 }));

interface RecordedMatch {
  readonly tradeId: number;
  readonly sequence: number;
  readonly parsed: Record<string, unknown>;
}

async function loadRecording(setup: StandInSetup, skipped: SkippedLines): Promise<{ entries: StreamedEntry[]; times: number[]; matches: Map<number, RecordedMatch> }> {
  const entries: StreamedEntry[] = [];
  const times: number[] = [];
  const matches = new Map<number, RecordedMatch>();
  for await (const line of recordedLines(setup.paths, skipped)) {
    const type = typeof line.parsed === 'object' && line.parsed !== null ? (line.parsed as { type?: unknown }).type : undefined;
    let entry: StreamedEntry;
    if (type === 'snapshot') {
      const snapshot = snapshotSchema.safeParse(line.parsed);
      if (!snapshot.success) {
        skipped.skip(line, describeIssues(snapshot.error));
        continue;
      }
      entry = { kind: 'snapshot', symbol: snapshot.data.product_id, frame: line.frame, bids: levels(snapshot.data.bids), asks: levels(snapshot.data.asks), depth: null };
    } else if (type === 'l2update') {
      const update = updateSchema.safeParse(line.parsed);
      if (!update.success) {
        skipped.skip(line, describeIssues(update.error));
        continue;
      }
      const side = (name: 'buy' | 'sell') => levels(update.data.changes.filter((change) => change[0] === name).map(([, price, size]) => [price, size] as const));
      entry = { kind: 'update', symbol: update.data.product_id, frame: line.frame, bids: side('buy'), asks: side('sell'), depth: null };
    } else if (type === 'match' || type === 'last_match') {
      const match = matchSchema.safeParse(line.parsed);
      if (!match.success) {
        skipped.skip(line, describeIssues(match.error));
        continue;
      }
      matches.set(entries.length, { tradeId: match.data.trade_id, sequence: match.data.sequence ?? 0, parsed: line.parsed as Record<string, unknown> });
      entry = tradeEntry(match.data.product_id, line.frame);
    } else {
      // subscriptions, heartbeats, errors: what the recording session was told, not market data.
      continue;
    }
    entries.push(entry);
    times.push(line.localTs);
  }
  return { entries, times, matches };
}

/**
 * How far trade ids and sequences move on for each pass of a looped recording: Coinbase never
 * repeats a trade id (its clients drop a repeat as the `last_match` of a reconnect), so the
 * second pass continues numbering after the first.
 */
interface LoopNumbering {
  readonly tradeIdSpan: number;
  readonly sequenceSpan: number;
}

function loopNumbering(matches: Map<number, RecordedMatch>): LoopNumbering {
  let minId = Infinity;
  let maxId = -Infinity;
  let minSequence = Infinity;
  let maxSequence = -Infinity;
  for (const match of matches.values()) {
    minId = Math.min(minId, match.tradeId);
    maxId = Math.max(maxId, match.tradeId);
    minSequence = Math.min(minSequence, match.sequence);
    maxSequence = Math.max(maxSequence, match.sequence);
  }
  return matches.size === 0 ? { tradeIdSpan: 0, sequenceSpan: 0 } : { tradeIdSpan: maxId - minId + 1, sequenceSpan: maxSequence - minSequence + 1 };
}

class CoinbaseClient extends StreamedClient {
  private readonly heartbeats = new Set<string>();
  /** Per product, the book channel the client named (level2 or level2_batch), for `subscriptions`. */
  private readonly bookChannels = new Map<string, Channel>();

  constructor(
    session: Session,
    books: StreamedBooks,
    setup: StandInSetup,
    private readonly matches: Map<number, RecordedMatch>,
    private readonly numbering: LoopNumbering,
  ) {
    super(session, books, setup.stats);
    this.startHeartbeat(HEARTBEAT_MS, false, () => [...this.heartbeats].map((symbol) => this.heartbeatFrame(symbol)));
  }

  onMessage(text: string | null): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text ?? '');
    } catch {
      this.error('Malformed JSON', 'the message is not a JSON object');
      return;
    }
    const request = requestSchema.safeParse(parsed);
    if (!request.success) {
      this.error('Failed to subscribe', describeIssues(request.error));
      return;
    }
    const { type, product_ids: topProducts = [], channels } = request.data;
    const wanted: [Channel, string][] = [];
    for (const channel of channels) {
      const name = typeof channel === 'string' ? channel : channel.name;
      const products = typeof channel === 'string' ? topProducts : (channel.product_ids ?? topProducts);
      if (!CHANNELS.includes(name as Channel)) {
        this.error('Failed to subscribe', `${name} is not a valid channel`);
        return;
      }
      if (products.length === 0) {
        this.error('Failed to subscribe', `You need to specify at least one product ID for channel ${name}`);
        return;
      }
      const unknown = products.find((id) => !this.books.has(id));
      if (unknown !== undefined) {
        this.error('Failed to subscribe', `${unknown} is not a valid product`);
        return;
      }
      for (const id of products) wanted.push([name as Channel, id]);
    }
    const on = type === 'subscribe';
    const newMatches: string[] = [];
    for (const [channel, id] of wanted) {
      if (channel === 'heartbeat') {
        if (on) this.heartbeats.add(id);
        else this.heartbeats.delete(id);
      } else if (channel === 'matches') {
        if (on && !this.follows(id, 'trades')) newMatches.push(id);
        this.follow(id, 'trades', on);
      } else if (on) {
        this.bookChannels.set(id, channel);
        if (!this.follows(id, 'book')) this.follow(id, 'book', true);
      } else if (this.bookChannels.get(id) === channel) {
        this.bookChannels.delete(id);
        this.follow(id, 'book', false);
      }
    }
    this.session.reply(this.subscriptionsFrame());
    for (const id of newMatches) {
      const last = this.lastMatch(id);
      if (last) this.session.reply(JSON.stringify({ ...this.renumbered(last), type: 'last_match' }));
    }
  }

  protected encodeSnapshot(symbol: string, book: LevelBook): string {
    const side = (name: 'bid' | 'ask') => book.top(name, Number.MAX_SAFE_INTEGER).map((level) => [level.texts[0], level.texts[1]]);
    return JSON.stringify({ type: 'snapshot', product_id: symbol, bids: side('bid'), asks: side('ask') });
  }

  protected override tradeFrame(index: number, frame: string): string {
    const match = this.matches.get(index);
    return this.session.loop === 0 || !match ? frame : JSON.stringify(this.renumbered(match));
  }

  /** The match as sent in the current pass: trade id and sequence moved on by one span per loop. */
  private renumbered(match: RecordedMatch): Record<string, unknown> {
    const loop = this.session.loop;
    if (loop === 0) return match.parsed;
    const fields: Record<string, unknown> = { ...match.parsed, trade_id: match.tradeId + loop * this.numbering.tradeIdSpan };
    if (typeof match.parsed.sequence === 'number') fields.sequence = match.sequence + loop * this.numbering.sequenceSpan;
    return fields;
  }

  private lastMatch(symbol: string): RecordedMatch | undefined {
    const [index] = this.books.tradeFramesBefore(symbol, this.session.cursor, 1);
    return index === undefined ? undefined : this.matches.get(index);
  }

  private heartbeatFrame(symbol: string): string {
    const last = this.lastMatch(symbol);
    const shown = last ? this.renumbered(last) : { sequence: 0, trade_id: 0 };
    return JSON.stringify({ type: 'heartbeat', sequence: shown.sequence ?? 0, last_trade_id: shown.trade_id, product_id: symbol, time: new Date().toISOString() });
  }

  private subscriptionsFrame(): string {
    const byChannel = new Map<Channel, string[]>();
    const add = (channel: Channel, id: string) => {
      const ids = byChannel.get(channel);
      if (ids) ids.push(id);
      else byChannel.set(channel, [id]);
    };
    for (const [id, channel] of this.bookChannels) add(channel, id);
    for (const [id, subscription] of this.subscriptions) if (subscription.trades) add('matches', id);
    for (const id of this.heartbeats) add('heartbeat', id);
    return JSON.stringify({ type: 'subscriptions', channels: [...byChannel].map(([name, product_ids]) => ({ name, product_ids })) });
  }

  private error(message: string, reason: string): void {
    this.session.reply(JSON.stringify({ type: 'error', message, reason }));
  }
}

export async function loadCoinbaseStandIn(setup: StandInSetup): Promise<VenueStandIn> {
  const skipped = new SkippedLines(setup.logger);
  const { entries, times, matches } = await loadRecording(setup, skipped);
  const books = new StreamedBooks({ entries, times });
  const numbering = loopNumbering(matches);
  const timeline = timelineOf(times);
  const errorBody = (message: string) => ({ message });
  const routeUpgrade = (url: URL): UpgradeRoute => ({
    detail: { path: url.pathname },
    open: (session): ConnectionHandler => {
      const client = new CoinbaseClient(session, books, setup, matches, numbering);
      session.script = client;
      return { onMessage: (text) => client.onMessage(text), onClose: () => client.stopHeartbeat() };
    },
  });
  return {
    timeline,
    summary: { entries: entries.length, streams: books.streamNames('level2', 'matches'), symbols: books.symbols, spanMs: timeline.spanMs, skippedLines: skipped.count },
    handleRequest: (url, method, res) => answerNoRest(url, method, res, errorBody),
    routeUpgrade,
    errorBody,
    reportAtClose: () => undefined,
  };
}
