// A local stand-in for Binance spot, replaying a raw-frame recording (hftbacktest format,
// `<receive ns> <frame>` per line) so the live client can be exercised with no network.
//
// Built on node:http plus `ws` in noServer mode rather than fastify: the server has four
// fixed routes and no schemas to share, while the websocket side needs full control of the
// upgrade (reject with a status before the handshake, route by path, bound the clients),
// which fastify would only wrap. Fewer layers also make `close()` easy to make complete.
//
// What it imitates (developers.binance.com, spot "WebSocket Streams" and "Market data"):
// - `/stream?streams=a/b` sends `{"stream":..,"data":..}` envelopes, `/ws/<stream>` sends the
//   bare payload; `{"method":"SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS",...}` frames work on
//   both; a ping frame every 20 s, and a client that sends no pong for a minute is dropped;
//   at most 5 incoming messages per second and 1024 streams per connection.
// - `GET /api/v3/depth`, `/api/v3/ping`, `/api/v3/time` with Binance's error bodies
//   (`{"code":-1121,"msg":"Invalid symbol."}`).
// - The same three under USDⓈ-M futures' paths (`/fapi/v1/depth`, `/fapi/v1/ping`, `/fapi/v1/time`),
//   so a futures recording (diff events with `pu`) serves the `binance-usdm` venue: the frames go
//   out as recorded, and the REST book at the stream position has the lastUpdateId of the last
//   event sent, which the next event's `pu` names, as the futures sync rule wants.
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';
import { readRecordedFrames } from '../venues/lines.js';

// ---------------------------------------------------------------------------------------
// Public contract

/** The subset of a pino logger the server uses; pino's `Logger` satisfies it. */
export interface FeedServerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** Replay speed: a multiple of the recorded pace, or `max` (as fast as each socket drains). */
export type FeedSpeed = number | 'max';

export interface FeedServerOptions {
  /** Raw-frame recording(s), plain or gzip, replayed in the order given as one timeline. */
  readonly recording: string | readonly string[];
  readonly host?: string;
  /** 0 picks a free port; read the chosen one from the returned `port`. */
  readonly port?: number;
  readonly speed: FeedSpeed;
  /** Restart the recording at its end; clients see the update ids jump back (a gap). */
  readonly loop: boolean;
  readonly logger?: FeedServerLogger;
  /** Binance pings every 20 s. */
  readonly pingIntervalMs?: number;
  /** Binance drops a connection that sent no pong for a minute. */
  readonly pongTimeoutMs?: number;
  readonly maxClients?: number;
  /** Binance allows 1024 streams per connection. */
  readonly maxStreamsPerClient?: number;
  /** Binance spot allows 5 incoming messages per second per connection. */
  readonly maxIncomingMessagesPerSecond?: number;
  /** Per-client send buffer above which replay pauses until the socket drains. */
  readonly highWaterBytes?: number;
  /** Monotonic clock in ms used for pacing (default `performance.now`). */
  readonly clock?: () => number;
  /**
   * Observation hook, called after each frame is handed to a socket with the recording
   * entry index and the clock reading at which it was sent (tests check pacing with it).
   */
  readonly onFrameSent?: (clientId: number, entryIndex: number, sentAt: number) => void;
  /**
   * A client's replay waits at the recording's REST snapshot until a depth request has come
   * in during this pass (or this long has passed), as the recorded session did when it fetched
   * that snapshot. So a client at speed max syncs at the recorded point and sees exactly the
   * books a replay of the same recording sees. 0 disables the wait. Default 2000 ms.
   */
  readonly holdAtSnapshotMs?: number;
}

export interface FeedServerStats {
  /** Clients connected now. */
  clients: number;
  /** Websocket connections accepted since start. */
  connections: number;
  /** Upgrades refused (bad path, bad stream name, too many clients or streams). */
  rejectedUpgrades: number;
  /** Clients dropped for not answering pings. */
  pongTimeouts: number;
  framesSent: number;
  /** Times any client wrapped around the end of the recording. */
  loops: number;
  restRequests: number;
  /** Successful `GET /api/v3/depth` answers. */
  depthRequests: number;
}

export interface RecordingSummary {
  /** Entries replayed: stream frames plus inline REST snapshots. */
  readonly entries: number;
  /** Stream names as recorded, e.g. `btcusdt@depth@100ms`. */
  readonly streams: readonly string[];
  /** Upper-case symbols that `GET /api/v3/depth` serves (those with a recorded snapshot). */
  readonly symbols: readonly string[];
  /** Recorded time from the first to the last entry. */
  readonly spanMs: number;
  /** Lines that were not a well-formed frame or snapshot, skipped at load. */
  readonly skippedLines: number;
}

export interface FeedServer {
  /** HTTP base, e.g. `http://127.0.0.1:40123`: REST lives under `/api/v3/...`. */
  readonly url: string;
  /** Websocket base, e.g. `ws://127.0.0.1:40123`: connect to `/stream?streams=...` or `/ws/<stream>`. */
  readonly wsUrl: string;
  readonly port: number;
  /** Live counters (read-only view). */
  readonly stats: Readonly<FeedServerStats>;
  readonly recording: RecordingSummary;
  /** Closes every client (code 1001), the listener and all timers. Idempotent. */
  close(): Promise<void>;
}

/** Parses a CLI speed argument: `max` or a positive number such as `1`, `10`, `0.5`. */
export function parseFeedSpeed(text: string): FeedSpeed {
  if (text.trim().toLowerCase() === 'max') return 'max';
  const speed = Number(text);
  if (!Number.isFinite(speed) || speed <= 0) {
    throw new Error(`speed: expected a positive number or "max", got ${JSON.stringify(text)}`);
  }
  return speed;
}

// ---------------------------------------------------------------------------------------
// Recording: parsed once at start, shared read-only by every client.

interface PriceLevel {
  readonly price: number;
  readonly priceText: string;
  readonly quantityText: string;
  /** Binance removes a level with quantity 0. */
  readonly removes: boolean;
}

interface DepthDiffEvent {
  readonly kind: 'diff';
  readonly symbol: string;
  readonly firstUpdateId: number;
  readonly finalUpdateId: number;
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
}

interface SnapshotEvent {
  readonly kind: 'snapshot';
  /** Assigned after load: a bare REST body does not name its symbol. */
  symbol: string | null;
  readonly lastUpdateId: number;
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
}

type BookEvent = DepthDiffEvent | SnapshotEvent;

interface Recording {
  /** Per entry: the frame as recorded (envelope, or snapshot body). */
  readonly frames: string[];
  /** Per entry: the bare `data` payload sent on raw (`/ws/...`) connections. */
  readonly payloads: string[];
  /** Per entry: index into `streams`, or -1 for an inline REST snapshot (never streamed). */
  readonly streamIds: Int32Array;
  /** Per entry: recorded time since the first entry, ms, never decreasing. */
  readonly offsets: Float64Array;
  readonly bookEvents: (BookEvent | null)[];
  readonly streams: string[];
  /** Lower-case stream key (see `streamKey`) -> recorded stream ids. */
  readonly streamIdsByKey: Map<string, number[]>;
  readonly spanMs: number;
  /** Recorded time from one loop's first entry to the next loop's first entry. */
  readonly loopPeriodMs: number;
  readonly skippedLines: number;
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

/**
 * The key two stream names share when they should receive the same recorded frames:
 * lower case, and the diff-depth update speed dropped, so `btcusdt@depth` and
 * `btcusdt@depth@100ms` both select a recorded `btcusdt@depth@100ms`.
 */
function streamKey(name: string): string {
  return name.toLowerCase().replace(/@depth@\d+ms$/, '@depth');
}

function levelsOf(raw: readonly (readonly [string, string])[]): PriceLevel[] {
  return raw.map(([priceText, quantityText]) => ({
    price: Number(priceText),
    priceText,
    quantityText,
    removes: Number(quantityText) === 0,
  }));
}

/** The envelope's `data` text exactly as recorded, when the envelope has the usual key order. */
function payloadOf(frame: string, stream: string, data: unknown): string {
  const prefix = `{"stream":${JSON.stringify(stream)},"data":`;
  if (frame.startsWith(prefix) && frame.endsWith('}')) return frame.slice(prefix.length, -1);
  return JSON.stringify(data);
}

async function loadRecording(paths: readonly string[], logger: FeedServerLogger): Promise<Recording> {
  const frames: string[] = [];
  const payloads: string[] = [];
  const streamIdList: number[] = [];
  const times: number[] = [];
  const bookEvents: (BookEvent | null)[] = [];
  const streams: string[] = [];
  const streamIdByName = new Map<string, number>();
  let skippedLines = 0;

  const skip = (path: string, lineFrame: string, problem: string): void => {
    skippedLines++;
    if (skippedLines <= 5) logger.warn({ path, problem, sample: lineFrame.slice(0, 120) }, 'feed-server: skipped a recorded line');
  };

  for (const path of paths) {
    for await (const { localTs, frame } of readRecordedFrames(path)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(frame);
      } catch {
        skip(path, frame, 'malformed JSON');
        continue;
      }
      if (typeof parsed === 'object' && parsed !== null && 'lastUpdateId' in parsed) {
        const snapshot = restDepthSchema.safeParse(parsed);
        if (!snapshot.success) {
          skip(path, frame, describeIssues(snapshot.error));
          continue;
        }
        frames.push(frame);
        payloads.push(frame);
        streamIdList.push(-1);
        times.push(localTs);
        bookEvents.push({
          kind: 'snapshot',
          symbol: null,
          lastUpdateId: snapshot.data.lastUpdateId,
          bids: levelsOf(snapshot.data.bids),
          asks: levelsOf(snapshot.data.asks),
        });
        continue;
      }
      const envelope = envelopeSchema.safeParse(parsed);
      if (!envelope.success) {
        skip(path, frame, describeIssues(envelope.error));
        continue;
      }
      const { stream, data } = envelope.data;
      let bookEvent: DepthDiffEvent | null = null;
      if (data.e === 'depthUpdate') {
        const diff = depthUpdateSchema.safeParse(data);
        if (!diff.success) {
          skip(path, frame, `data.${describeIssues(diff.error)}`);
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
      let streamId = streamIdByName.get(stream);
      if (streamId === undefined) {
        streamId = streams.length;
        streams.push(stream);
        streamIdByName.set(stream, streamId);
      }
      frames.push(frame);
      payloads.push(payloadOf(frame, stream, data));
      streamIdList.push(streamId);
      times.push(localTs);
      bookEvents.push(bookEvent);
    }
  }

  assignSnapshotSymbols(bookEvents, logger);

  // Files given out of order or clock steps backwards must not schedule a frame in the past
  // of its predecessor: offsets never decrease.
  const offsets = new Float64Array(times.length);
  let latest = times.length > 0 ? times[0] : 0;
  for (let i = 0; i < times.length; i++) {
    if (times[i] > latest) latest = times[i];
    offsets[i] = latest - times[0];
  }
  const spanMs = times.length > 0 ? offsets[times.length - 1] : 0;
  const meanGapMs = times.length > 1 ? spanMs / (times.length - 1) : 0;

  const streamIdsByKey = new Map<string, number[]>();
  streams.forEach((name, id) => {
    const key = streamKey(name);
    const ids = streamIdsByKey.get(key);
    if (ids) ids.push(id);
    else streamIdsByKey.set(key, [id]);
  });

  return {
    frames,
    payloads,
    streamIds: Int32Array.from(streamIdList),
    offsets,
    bookEvents,
    streams,
    streamIdsByKey,
    spanMs,
    loopPeriodMs: spanMs + meanGapMs,
    skippedLines,
  };
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

// ---------------------------------------------------------------------------------------
// The REST book: the recorded snapshot plus the recorded diffs up to a stream position.

interface DepthLevelsBody {
  readonly lastUpdateId: number;
  readonly bids: [string, string][];
  readonly asks: [string, string][];
}

/**
 * One symbol's full L2 book, reconstructed lazily up to a position of the replay (an entry
 * index in a given loop). Moving backwards (a newer client, a loop restart) rebuilds from
 * the first recorded snapshot. Levels reference the parsed recording, so applying a diff
 * allocates nothing.
 */
class ReplayBook {
  private readonly bids = new Map<number, PriceLevel>();
  private readonly asks = new Map<number, PriceLevel>();
  private lastUpdateId = 0;
  /** Next index into `eventEntries` to apply. */
  private nextEvent = 0;
  private loop = -1;
  /** Diffs whose first id skipped past the book's (a gap inside the recording). */
  recordedGaps = 0;

  constructor(
    private readonly base: SnapshotEvent,
    /** Recording entry indices of this symbol's diffs and snapshots, ascending. */
    private readonly eventEntries: Int32Array,
    private readonly bookEvents: readonly (BookEvent | null)[],
  ) {
    this.rebuild(0);
  }

  /**
   * The book exactly as the recorded REST snapshot: what the recorded session fetched while
   * its stream stood at this point (diffs received before the response are still buffered by
   * the client, and Binance's procedure applies them).
   */
  resetToSnapshot(loop: number): void {
    this.rebuild(loop);
  }

  /** Applies every event of this symbol before entry `cursor` of loop `loop`. */
  syncTo(cursor: number, loop: number): void {
    const behind = this.nextEvent > 0 && this.eventEntries[this.nextEvent - 1] >= cursor;
    if (loop !== this.loop || behind) this.rebuild(loop);
    const entries = this.eventEntries;
    while (this.nextEvent < entries.length && entries[this.nextEvent] < cursor) {
      this.apply(this.bookEvents[entries[this.nextEvent]] as BookEvent);
      this.nextEvent++;
    }
  }

  top(limit: number): DepthLevelsBody {
    return {
      lastUpdateId: this.lastUpdateId,
      bids: topLevels(this.bids, limit, -1),
      asks: topLevels(this.asks, limit, 1),
    };
  }

  private rebuild(loop: number): void {
    this.loop = loop;
    this.nextEvent = 0;
    this.load(this.base);
  }

  private load(snapshot: SnapshotEvent): void {
    this.bids.clear();
    this.asks.clear();
    for (const level of snapshot.bids) this.bids.set(level.price, level);
    for (const level of snapshot.asks) this.asks.set(level.price, level);
    this.lastUpdateId = snapshot.lastUpdateId;
  }

  private apply(event: BookEvent): void {
    if (event.kind === 'snapshot') {
      // A later recorded snapshot only matters if the book fell behind it (a recorded gap).
      if (event !== this.base && event.lastUpdateId > this.lastUpdateId) this.load(event);
      return;
    }
    // Binance's rule: events the snapshot already contains are dropped.
    if (event.finalUpdateId <= this.lastUpdateId) return;
    if (event.firstUpdateId > this.lastUpdateId + 1) this.recordedGaps++;
    applySide(this.bids, event.bids);
    applySide(this.asks, event.asks);
    this.lastUpdateId = event.finalUpdateId;
  }
}

function applySide(side: Map<number, PriceLevel>, levels: readonly PriceLevel[]): void {
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.removes) side.delete(level.price);
    else side.set(level.price, level);
  }
}

function topLevels(side: Map<number, PriceLevel>, limit: number, direction: 1 | -1): [string, string][] {
  const prices = Array.from(side.keys()).sort((a, b) => (a - b) * direction);
  const count = Math.min(limit, prices.length);
  const out: [string, string][] = new Array(count);
  for (let i = 0; i < count; i++) {
    const level = side.get(prices[i]) as PriceLevel;
    out[i] = [level.priceText, level.quantityText];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// One websocket client: its subscriptions and its own cursor through the recording.

interface ReplayContext {
  readonly recording: Recording;
  readonly speed: FeedSpeed;
  readonly loop: boolean;
  readonly clock: () => number;
  readonly highWaterBytes: number;
  readonly stats: FeedServerStats;
  readonly onFrameSent: ((clientId: number, entryIndex: number, sentAt: number) => void) | undefined;
  readonly holdAtSnapshotMs: number;
}

/** Frames examined per event-loop turn, so one fast client cannot starve the others. */
const PUMP_BATCH = 512;

class ClientSession {
  /** Stream names as the client asked for them (lower case), for LIST_SUBSCRIPTIONS. */
  readonly subscriptions = new Set<string>();
  /** Per recorded stream id: 1 when this client receives it. */
  private readonly wanted: Uint8Array;
  private wantedCount = 0;
  /** Next recording entry to consider, and how many times the recording wrapped. */
  cursor = 0;
  loop = 0;
  /** `stats.depthRequests` when this pass through the recording began, and when a hold began. */
  private depthRequestsAtPassStart = -1;
  private holdStartedAt = -1;

  /** Waiting at the recording's REST snapshot for this pass's depth request. */
  get holdingAtSnapshot(): boolean {
    return this.holdStartedAt >= 0;
  }
  /** Clock reading at which entry 0 of loop 0 was due; set on the first subscription. */
  private startedAt = -1;
  /** Clock reading when the last subscription was dropped; paced time stands still meanwhile. */
  private pausedAt = -1;
  private loopOffsetMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private waitingForDrain = false;
  private stopped = false;
  lastPongAt: number;
  private messageWindowStart = 0;
  private messagesInWindow = 0;

  constructor(
    readonly id: number,
    readonly socket: WebSocket,
    readonly combined: boolean,
    private readonly context: ReplayContext,
  ) {
    this.wanted = new Uint8Array(context.recording.streams.length);
    this.lastPongAt = context.clock();
  }

  subscribe(names: readonly string[]): void {
    for (const name of names) this.subscriptions.add(name);
    this.refreshWanted();
  }

  unsubscribe(names: readonly string[]): void {
    for (const name of names) this.subscriptions.delete(name);
    this.refreshWanted();
  }

  /** Counts one incoming message; false once the client exceeds `limit` per second. */
  admitMessage(limit: number): boolean {
    const now = this.context.clock();
    if (now - this.messageWindowStart >= 1000) {
      this.messageWindowStart = now;
      this.messagesInWindow = 0;
    }
    this.messagesInWindow++;
    return this.messagesInWindow <= limit;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private refreshWanted(): void {
    this.wanted.fill(0);
    const { streamIdsByKey } = this.context.recording;
    for (const name of this.subscriptions) {
      for (const id of streamIdsByKey.get(streamKey(name)) ?? []) this.wanted[id] = 1;
    }
    const wasPaused = this.wantedCount === 0;
    this.wantedCount = 0;
    for (let i = 0; i < this.wanted.length; i++) this.wantedCount += this.wanted[i];
    if (this.wantedCount === 0) {
      if (!wasPaused) this.pausedAt = this.context.clock();
      return;
    }
    if (wasPaused && this.pausedAt >= 0) {
      this.startedAt += this.context.clock() - this.pausedAt;
      this.pausedAt = -1;
    }
    if (this.timer === null && this.immediate === null) this.pump();
  }

  /**
   * Sends every frame that is due, in recorded order. Paced replay schedules itself for the
   * next due frame; `max` yields after each batch. Either way it stops while the socket's
   * buffer is above the high-water mark and resumes from the send callback, which fires
   * once the buffered data has been written out. While nothing recorded is subscribed the
   * cursor stands still (a fresh `/ws` connection starts at the beginning on SUBSCRIBE).
   */
  private readonly pump = (): void => {
    this.timer = null;
    this.immediate = null;
    if (this.stopped || this.waitingForDrain || this.wantedCount === 0) return;
    const { recording, speed, clock, highWaterBytes, stats, onFrameSent } = this.context;
    const { offsets, streamIds, frames, payloads } = recording;
    const count = offsets.length;
    const paced = speed !== 'max';
    let now = clock();
    if (this.startedAt < 0) this.startedAt = now;
    if (this.depthRequestsAtPassStart < 0) this.depthRequestsAtPassStart = stats.depthRequests;
    for (let budget = PUMP_BATCH; budget > 0; budget--) {
      if (this.cursor === count) {
        if (!this.context.loop || count === 0) return;
        this.cursor = 0;
        this.loop++;
        this.loopOffsetMs += recording.loopPeriodMs;
        this.depthRequestsAtPassStart = stats.depthRequests;
        stats.loops++;
      }
      const index = this.cursor;
      if (paced) {
        const dueAt = this.startedAt + (this.loopOffsetMs + offsets[index]) / (speed as number);
        if (dueAt > now) {
          now = clock();
          if (dueAt > now) {
            this.timer = setTimeout(this.pump, dueAt - now);
            return;
          }
        }
      }
      if (streamIds[index] < 0 && this.context.holdAtSnapshotMs > 0 && this.wantedCount > 0) {
        if (this.holdStartedAt < 0) this.holdStartedAt = now;
        const fetched = stats.depthRequests > this.depthRequestsAtPassStart;
        if (!fetched && now - this.holdStartedAt < this.context.holdAtSnapshotMs) {
          this.timer = setTimeout(this.pump, 2);
          return;
        }
        // The wait is not recorded time: later frames keep their recorded spacing.
        if (paced) this.startedAt += now - this.holdStartedAt;
        this.holdStartedAt = -1;
      }
      this.cursor = index + 1;
      const streamId = streamIds[index];
      if (streamId < 0 || this.wanted[streamId] === 0) continue;
      const text = this.combined ? frames[index] : payloads[index];
      if (this.socket.bufferedAmount >= highWaterBytes) {
        this.waitingForDrain = true;
        this.socket.send(text, this.resumeAfterDrain);
      } else {
        this.socket.send(text);
      }
      stats.framesSent++;
      if (onFrameSent) onFrameSent(this.id, index, now);
      if (this.waitingForDrain) return;
    }
    this.immediate = setImmediate(this.pump);
  };

  private readonly resumeAfterDrain = (error?: Error): void => {
    this.waitingForDrain = false;
    if (!error) this.pump();
  };
}

// ---------------------------------------------------------------------------------------
// The server

const optionsSchema = z.object({
  recording: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(0),
  speed: z.union([z.literal('max'), z.number().positive()]),
  loop: z.boolean(),
  pingIntervalMs: z.number().positive().default(20_000),
  pongTimeoutMs: z.number().positive().default(60_000),
  maxClients: z.number().int().positive().default(64),
  maxStreamsPerClient: z.number().int().positive().default(1024),
  maxIncomingMessagesPerSecond: z.number().int().positive().default(5),
  highWaterBytes: z.number().int().positive().default(1 << 20),
  holdAtSnapshotMs: z.number().min(0).default(2000),
});

/** Binance's documented depth limit range; larger values are truncated to the maximum. */
const MAX_DEPTH_LIMIT = 5000;
const DEFAULT_DEPTH_LIMIT = 100;
/** Stream names as Binance spells them: `<symbol>@<channel>[@<option>]`. */
const STREAM_NAME = /^[a-z0-9._-]{1,64}@[a-z0-9@._-]{1,64}$/;
const MAX_INCOMING_MESSAGE_BYTES = 16 * 1024;
const CLOSE_GRACE_MS = 1000;

const methodFrameSchema = z.object({
  method: z.enum(['SUBSCRIBE', 'UNSUBSCRIBE', 'LIST_SUBSCRIPTIONS']),
  params: z.array(z.string().max(200)).max(2048).optional(),
  id: z.union([z.number().int(), z.string().max(36), z.null()]),
});

const silentLogger: FeedServerLogger = { info() {}, warn() {}, debug() {} };

type StreamRoute = { readonly combined: boolean; readonly streams: string[] } | { readonly status: number; readonly message: string };

/**
 * Starts the stand-in. Resolves once the recording is loaded and the port is listening.
 * Throws when an option is invalid or the recording holds no frame.
 */
export async function startFeedServer(options: FeedServerOptions): Promise<FeedServer> {
  const parsedOptions = optionsSchema.safeParse(options);
  if (!parsedOptions.success) throw new Error(`feed-server options: ${describeIssues(parsedOptions.error)}`);
  const config = parsedOptions.data;
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? (() => performance.now());
  const paths = typeof config.recording === 'string' ? [config.recording] : config.recording;

  const loadStarted = performance.now();
  const recording = await loadRecording(paths, logger);
  if (recording.frames.length === 0) throw new Error(`feed-server: no frames in ${paths.join(', ')}`);
  const books = buildBooks(recording, logger);

  const stats: FeedServerStats = {
    clients: 0,
    connections: 0,
    rejectedUpgrades: 0,
    pongTimeouts: 0,
    framesSent: 0,
    loops: 0,
    restRequests: 0,
    depthRequests: 0,
  };
  const context: ReplayContext = {
    recording,
    speed: config.speed,
    loop: config.loop,
    clock,
    highWaterBytes: config.highWaterBytes,
    stats,
    onFrameSent: options.onFrameSent,
    holdAtSnapshotMs: config.holdAtSnapshotMs,
  };
  /** Insertion order is connection order: the last one is the most recent client. */
  const sessions = new Set<ClientSession>();
  let nextClientId = 1;
  let closing: Promise<void> | null = null;

  const summary: RecordingSummary = {
    entries: recording.frames.length,
    streams: [...recording.streams],
    symbols: [...books.keys()],
    spanMs: recording.spanMs,
    skippedLines: recording.skippedLines,
  };

  // --- REST ------------------------------------------------------------------------------

  const newestSession = (): ClientSession | undefined => {
    let newest: ClientSession | undefined;
    for (const session of sessions) newest = session;
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
    // for the client that just connected; with no client the book stays where it was.
    const newest = newestSession();
    if (newest?.holdingAtSnapshot) book.resetToSnapshot(newest.loop);
    else if (newest) book.syncTo(newest.cursor, newest.loop);
    stats.depthRequests++;
    sendJson(res, 200, book.top(Math.min(limit, MAX_DEPTH_LIMIT)));
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    stats.restRequests++;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      // Futures paths answer as spot's: the stand-in serves whatever market was recorded.
      const route = url.pathname.replace(/^\/fapi\/v1\//, '/api/v3/');
      if (route !== '/api/v3/depth' && route !== '/api/v3/ping' && route !== '/api/v3/time') {
        sendJson(res, 404, { code: -1000, msg: `Unknown endpoint ${url.pathname}.` });
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { code: -1000, msg: `Method ${req.method} is not allowed on ${url.pathname}.` });
        return;
      }
      if (route === '/api/v3/ping') sendJson(res, 200, {});
      else if (route === '/api/v3/time') sendJson(res, 200, { serverTime: Date.now() });
      else answerDepth(url.searchParams, res);
    } catch (error) {
      logger.warn({ err: error, url: req.url }, 'feed-server: request failed');
      if (!res.headersSent) sendJson(res, 500, { code: -1000, msg: 'An unknown error occurred while processing the request.' });
      else res.destroy();
    }
  };

  // --- Websocket ---------------------------------------------------------------------------

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: MAX_INCOMING_MESSAGE_BYTES,
  });

  const routeOf = (rawUrl: string): StreamRoute => {
    const url = new URL(rawUrl, 'http://localhost');
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
    return { combined, streams };
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    let route: StreamRoute;
    try {
      route = routeOf(req.url ?? '/');
    } catch {
      route = { status: 400, message: 'malformed URL' };
    }
    if ('status' in route) {
      rejectUpgrade(socket, route.status, route.message);
      stats.rejectedUpgrades++;
      return;
    }
    if (sessions.size >= config.maxClients) {
      rejectUpgrade(socket, 429, `too many clients: at most ${config.maxClients}`);
      stats.rejectedUpgrades++;
      return;
    }
    const { combined, streams } = route;
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, combined, streams));
  };

  const onConnection = (ws: WebSocket, combined: boolean, streams: string[]): void => {
    if (closing) {
      ws.terminate();
      return;
    }
    const session = new ClientSession(nextClientId++, ws, combined, context);
    sessions.add(session);
    stats.clients = sessions.size;
    stats.connections++;
    logger.info({ client: session.id, combined, streams }, 'feed-server: client connected');
    ws.on('pong', () => {
      session.lastPongAt = clock();
    });
    ws.on('message', (data, isBinary) => onClientMessage(session, data, isBinary));
    ws.on('error', (error) => logger.debug({ client: session.id, err: error }, 'feed-server: client socket error'));
    ws.on('close', (code) => {
      session.stop();
      sessions.delete(session);
      stats.clients = sessions.size;
      logger.info({ client: session.id, code }, 'feed-server: client disconnected');
    });
    if (streams.length > 0) session.subscribe(streams);
  };

  const onClientMessage = (session: ClientSession, data: RawData, isBinary: boolean): void => {
    if (!session.admitMessage(config.maxIncomingMessagesPerSecond)) {
      session.socket.close(1008, 'Too many requests');
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(isBinary ? '' : data.toString());
    } catch {
      replyError(session, 3, 'Invalid JSON: the frame is not a JSON object', null);
      return;
    }
    const request = methodFrameSchema.safeParse(parsed);
    if (!request.success) {
      const id = typeof parsed === 'object' && parsed !== null && 'id' in parsed ? (parsed as { id: unknown }).id : null;
      replyError(session, 2, `Invalid request: ${describeIssues(request.error)}`, typeof id === 'number' || typeof id === 'string' ? id : null);
      return;
    }
    const { method, params, id } = request.data;
    if (method === 'LIST_SUBSCRIPTIONS') {
      session.socket.send(JSON.stringify({ result: [...session.subscriptions], id }));
      return;
    }
    const names = (params ?? []).map((name) => name.toLowerCase());
    const invalid = names.find((name) => !STREAM_NAME.test(name));
    if (invalid !== undefined) {
      replyError(session, 2, `Invalid request: invalid stream name ${JSON.stringify(invalid)}`, id);
      return;
    }
    if (method === 'SUBSCRIBE') {
      const after = new Set([...session.subscriptions, ...names]).size;
      if (after > config.maxStreamsPerClient) {
        replyError(session, 2, `Invalid request: too many streams: ${after} > ${config.maxStreamsPerClient}`, id);
        return;
      }
      // The reply goes out before the first frame of the new streams, as on Binance.
      session.socket.send(JSON.stringify({ result: null, id }));
      session.subscribe(names);
    } else {
      session.unsubscribe(names);
      session.socket.send(JSON.stringify({ result: null, id }));
    }
  };

  const replyError = (session: ClientSession, code: number, msg: string, id: number | string | null): void => {
    session.socket.send(JSON.stringify({ error: { code, msg }, id }));
  };

  const pingTimer = setInterval(() => {
    const now = clock();
    for (const session of sessions) {
      if (now - session.lastPongAt > config.pongTimeoutMs) {
        stats.pongTimeouts++;
        logger.info({ client: session.id }, 'feed-server: no pong in time; dropping client');
        session.stop();
        session.socket.terminate();
      } else {
        session.socket.ping();
      }
    }
  }, config.pingIntervalMs);

  // --- Listen and close --------------------------------------------------------------------

  const server = createServer(onRequest);
  server.on('upgrade', onUpgrade);
  // Websocket clients plus a margin for REST calls; anything beyond is refused by the kernel.
  server.maxConnections = config.maxClients * 2 + 32;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(pingTimer);
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  logger.info(
    {
      url: `http://${hostForUrl}:${port}`,
      entries: summary.entries,
      streams: summary.streams,
      symbols: summary.symbols,
      spanMs: Math.round(summary.spanMs),
      skippedLines: summary.skippedLines,
      loadMs: Math.round(performance.now() - loadStarted),
      speed: config.speed,
      loop: config.loop,
    },
    'feed-server: listening',
  );

  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(pingTimer);
      await Promise.all([...sessions].map((session) => closeSession(session)));
      server.closeAllConnections();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      for (const book of books.values()) {
        if (book.recordedGaps > 0) logger.warn({ gaps: book.recordedGaps }, 'feed-server: the recording had update-id gaps');
      }
    })();
    return closing;
  };

  return {
    url: `http://${hostForUrl}:${port}`,
    wsUrl: `ws://${hostForUrl}:${port}`,
    port,
    stats,
    recording: summary,
    close,
  };
}

function buildBooks(recording: Recording, logger: FeedServerLogger): Map<string, ReplayBook> {
  const entriesBySymbol = new Map<string, number[]>();
  const baseBySymbol = new Map<string, SnapshotEvent>();
  recording.bookEvents.forEach((event, index) => {
    if (!event || event.symbol === null) return;
    const entries = entriesBySymbol.get(event.symbol);
    if (entries) entries.push(index);
    else entriesBySymbol.set(event.symbol, [index]);
    if (event.kind === 'snapshot' && !baseBySymbol.has(event.symbol)) baseBySymbol.set(event.symbol, event);
  });
  const books = new Map<string, ReplayBook>();
  for (const [symbol, entries] of entriesBySymbol) {
    const base = baseBySymbol.get(symbol);
    if (!base) {
      logger.warn({ symbol }, 'feed-server: diff stream without a recorded REST snapshot; GET /api/v3/depth will not serve it');
      continue;
    }
    books.set(symbol, new ReplayBook(base, Int32Array.from(entries), recording.bookEvents));
  }
  return books;
}

/** Closes with 1001 (going away) and waits for the handshake, terminating a silent peer. */
function closeSession(session: ClientSession): Promise<void> {
  session.stop();
  const socket = session.socket;
  if (socket.readyState === socket.CLOSED) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
    socket.once('close', () => {
      clearTimeout(force);
      resolve();
    });
    socket.close(1001, 'Server shutting down');
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json;charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers an upgrade request with a plain HTTP error instead of the handshake. */
function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ code: -1000, msg: message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json;charset=UTF-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
