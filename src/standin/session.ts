// One websocket client of a stand-in: its own cursor through the recording, paced at the
// recorded spacing (or as fast as its socket drains), in recorded order, pausing while it is
// subscribed to nothing. What an entry means for the client (a frame, nothing, a snapshot
// first) is the venue's: its `SessionScript` decides, and sends through `send`.
import type { WebSocket } from 'ws';
import type { Timeline } from './recording.js';

/** Replay speed: a multiple of the recorded pace, or `max` (as fast as each socket drains). */
export type FeedSpeed = number | 'max';

/** Parses a CLI speed argument: `max` or a positive number such as `1`, `10`, `0.5`. */
export function parseFeedSpeed(text: string): FeedSpeed {
  if (text.trim().toLowerCase() === 'max') return 'max';
  const speed = Number(text);
  if (!Number.isFinite(speed) || speed <= 0) {
    throw new Error(`speed: expected a positive number or "max", got ${JSON.stringify(text)}`);
  }
  return speed;
}

export interface SessionCounters {
  framesSent: number;
  /** Times any client wrapped around the end of the recording. */
  loops: number;
}

export interface SessionContext {
  readonly timeline: Timeline;
  readonly speed: FeedSpeed;
  readonly loop: boolean;
  readonly clock: () => number;
  readonly highWaterBytes: number;
  readonly stats: SessionCounters;
  readonly onFrameSent: ((clientId: number, entryIndex: number, sentAt: number, dueAt: number) => void) | undefined;
}

/** What a venue does with the entries of the recording for one client. */
export interface SessionScript {
  /**
   * True while the replay must wait before entry `index` (Binance: at the recorded REST
   * snapshot until the client fetched it). `heldSince` is when this wait began. The wait is
   * not recorded time: later frames keep their recorded spacing.
   */
  holdAt?(index: number, now: number, heldSince: number): boolean;
  /** Sends (through `session.send`) whatever entry `index` means for this client. */
  play(index: number): void;
  /** The recording starts over for this client. */
  onLoop?(): void;
}

/** Frames examined per event-loop turn, so one fast client cannot starve the others. */
const PUMP_BATCH = 512;

export class Session {
  script: SessionScript = { play() {} };
  /** Next recording entry to consider, and how many times the recording wrapped. */
  cursor = 0;
  loop = 0;
  lastPongAt: number;
  /** Clock reading of the last frame sent (replay or reply), for venues that heartbeat when idle. */
  lastSentAt: number;
  /** Book updates still to leave out (a fault control: the client must notice the gap). */
  private updatesToSkip = 0;
  private holdStartedAt = -1;
  /** Clock reading at which entry 0 of loop 0 was due; set when the client first subscribes. */
  private startedAt = -1;
  /** When the entry being played was due (its clock reading at speed max): what `onFrameSent` reports. */
  private entryDueAt = -1;
  /** Clock reading when the client became idle; paced time stands still meanwhile. */
  private pausedAt = -1;
  private active = false;
  private loopOffsetMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private waitingForDrain = false;
  private stopped = false;
  private entryIndex = -1;
  private messageWindowStart = 0;
  private messagesInWindow = 0;

  constructor(
    readonly id: number,
    readonly socket: WebSocket,
    private readonly context: SessionContext,
  ) {
    this.lastPongAt = context.clock();
    this.lastSentAt = this.lastPongAt;
  }

  /** The pacing clock's reading now. */
  now(): number {
    return this.context.clock();
  }

  /** Waiting before an entry (see `SessionScript.holdAt`). */
  get holding(): boolean {
    return this.holdStartedAt >= 0;
  }

  /**
   * Whether the client is subscribed to anything recorded. While it is not, the cursor stands
   * still (a fresh connection starts at the beginning when it first subscribes).
   */
  setActive(active: boolean): void {
    if (active === this.active) {
      if (active) this.kick();
      return;
    }
    this.active = active;
    if (!active) {
      this.pausedAt = this.context.clock();
      return;
    }
    if (this.pausedAt >= 0 && this.startedAt >= 0) this.startedAt += this.context.clock() - this.pausedAt;
    this.pausedAt = -1;
    this.kick();
  }

  /** Sends one frame for the entry being played, pausing the replay while the socket's buffer is full. */
  send(text: string): void {
    const { highWaterBytes, stats, onFrameSent, clock } = this.context;
    if (this.socket.bufferedAmount >= highWaterBytes) {
      this.waitingForDrain = true;
      this.socket.send(text, this.resumeAfterDrain);
    } else {
      this.socket.send(text);
    }
    stats.framesSent++;
    this.lastSentAt = clock();
    if (onFrameSent) onFrameSent(this.id, this.entryIndex, this.lastSentAt, this.entryDueAt);
  }

  /** A reply to the client (subscription acks, errors): not part of the replay, never paused. */
  reply(text: string): void {
    this.lastSentAt = this.context.clock();
    this.socket.send(text);
  }

  /** Leaves out the next `count` book updates (see `takeSkippedUpdate`). */
  skipUpdates(count: number): void {
    this.updatesToSkip += count;
  }

  /** Called by a script before sending a book update: true when this one is to be left out. */
  takeSkippedUpdate(): boolean {
    if (this.updatesToSkip === 0) return false;
    this.updatesToSkip--;
    return true;
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

  /**
   * Starts the replay on the next turn, not now: a request that subscribes several channels
   * is applied whole before any entry is played (and its reply goes out first).
   */
  private kick(): void {
    if (this.timer === null && this.immediate === null) this.immediate = setImmediate(this.pump);
  }

  /**
   * Plays every entry that is due, in recorded order. Paced replay schedules itself for the
   * next due entry; `max` yields after each batch. Either way it stops while the socket's
   * buffer is above the high-water mark and resumes from the send callback, which fires once
   * the buffered data has been written out.
   */
  private readonly pump = (): void => {
    this.timer = null;
    this.immediate = null;
    if (this.stopped || this.waitingForDrain || !this.active) return;
    const { timeline, speed, clock, stats } = this.context;
    const { offsets } = timeline;
    const count = offsets.length;
    const paced = speed !== 'max';
    let now = clock();
    if (this.startedAt < 0) this.startedAt = now;
    for (let budget = PUMP_BATCH; budget > 0; budget--) {
      if (this.cursor === count) {
        if (!this.context.loop || count === 0) return;
        this.cursor = 0;
        this.loop++;
        this.loopOffsetMs += timeline.loopPeriodMs;
        stats.loops++;
        this.script.onLoop?.();
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
      if (this.script.holdAt) {
        const heldSince = this.holdStartedAt >= 0 ? this.holdStartedAt : now;
        if (this.script.holdAt(index, now, heldSince)) {
          this.holdStartedAt = heldSince;
          this.timer = setTimeout(this.pump, 2);
          return;
        }
        if (this.holdStartedAt >= 0) {
          if (paced) this.startedAt += now - this.holdStartedAt;
          this.holdStartedAt = -1;
        }
      }
      this.cursor = index + 1;
      this.entryIndex = index;
      this.entryDueAt = paced ? this.startedAt + (this.loopOffsetMs + offsets[index]) / (speed as number) : now;
      this.script.play(index);
      if (this.waitingForDrain || this.stopped) return;
    }
    this.immediate = setImmediate(this.pump);
  };

  private readonly resumeAfterDrain = (error?: Error): void => {
    this.waitingForDrain = false;
    if (!error) this.pump();
  };
}
