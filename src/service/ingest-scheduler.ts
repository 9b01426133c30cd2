// Every producer's work (each push connection, each POST body, each live feed, checkpoint writes,
// background restores) waits in a lane of its own, and one scheduler runs the lanes round-robin,
// one item per lane per turn, in slices of a few milliseconds with the event loop free between
// slices. So no producer takes more than its share of the engine, however much it sends, and
// health checks, the prediction stream and every socket are served between any two slices.
//
// An item is one message (one snapshot, one trade) or one checkpoint: the smallest unit the
// engine does atomically, so a slice overruns its budget by at most one item.
//
// A lane may be asked, before each item, whether that item can run now (its symbol's worker
// thread has no room): if not, the lane leaves the turn order until the promise it was given
// settles, and the other lanes go on. Work handed on is then bounded where it is done, so the
// order of turns here stays the order in which the work is done.

export interface SchedulerOptions {
  /** Work done before the event loop gets a turn (default 4 ms). */
  readonly sliceMs?: number;
  /** Monotonic milliseconds (default performance.now). */
  readonly clock?: () => number;
  /** An item that throws is dropped and reported here; the lane goes on with the next. */
  readonly onError?: (lane: string, error: unknown) => void;
}

/**
 * Asked before a lane's next item runs: null lets it run, a promise parks the lane (its later
 * items too, in order) until it settles.
 */
export type LaneGate<T> = (item: T) => Promise<void> | null;

export interface SchedulerStats {
  /** Items run since start. */
  items: number;
  slices: number;
  /** The longest slice, ms: the longest the event loop waited on ingest. */
  longestSliceMs: number;
  /** Items that threw. */
  failures: number;
  /** Times a lane was parked by its gate. */
  parks: number;
}

export class IngestScheduler {
  readonly stats: SchedulerStats = { items: 0, slices: 0, longestSliceMs: 0, failures: 0, parks: 0 };
  private readonly sliceMs: number;
  private readonly clock: () => number;
  private readonly onError: (lane: string, error: unknown) => void;
  /** Lanes with queued items, in round-robin order. */
  private readonly ready: IngestLane<unknown>[] = [];
  /** Lanes with queued items waiting on their gate, out of the turn order. */
  private readonly parked = new Set<IngestLane<unknown>>();
  private cursor = 0;
  private scheduled: NodeJS.Immediate | null = null;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(options: SchedulerOptions = {}) {
    this.sliceMs = options.sliceMs ?? 4;
    if (!(this.sliceMs > 0)) throw new RangeError(`sliceMs: must be > 0, got ${this.sliceMs}`);
    this.clock = options.clock ?? (() => performance.now());
    this.onError = options.onError ?? (() => {});
  }

  /** A new lane whose items `run` processes one at a time, each once `gate` (if any) lets it. */
  lane<T>(name: string, run: (item: T) => void, gate?: LaneGate<T>): IngestLane<T> {
    return new IngestLane<T>(this, name, run, gate);
  }

  /** Items waiting in every lane. */
  get queued(): number {
    let total = 0;
    for (const lane of this.ready) total += lane.queued;
    for (const lane of this.parked) total += lane.queued;
    return total;
  }

  /** Lanes waiting on their gate. */
  get parkedLanes(): number {
    return this.parked.size;
  }

  /** Resolves once no lane has anything queued. */
  idle(): Promise<void> {
    if (this.ready.length === 0 && this.parked.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops scheduling; queued items stay where they are. */
  close(): void {
    this.closed = true;
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    this.wakeIdle();
  }

  /** @internal a lane got its first queued item. */
  markReady(lane: IngestLane<unknown>): void {
    this.ready.push(lane);
    this.schedule();
  }

  /** @internal a lane was closed with items queued. */
  forget(lane: IngestLane<unknown>): void {
    if (this.parked.delete(lane)) {
      if (this.ready.length === 0 && this.parked.size === 0) this.wakeIdle();
      return;
    }
    const index = this.ready.indexOf(lane);
    if (index < 0) return;
    this.ready.splice(index, 1);
    if (index < this.cursor) this.cursor--;
    if (this.ready.length === 0 && this.parked.size === 0) this.wakeIdle();
  }

  /** Runs up to one slice now, synchronously (tests and shutdown drain with it). */
  runSlice(): void {
    this.scheduled = null;
    if (this.closed) return;
    const started = this.clock();
    const deadline = started + this.sliceMs;
    while (this.ready.length > 0) {
      if (this.cursor >= this.ready.length) this.cursor = 0;
      const lane = this.ready[this.cursor];
      const gate = lane.gateOfNext();
      if (gate) {
        // Out of the turn order until its gate opens; it rejoins at the end, as a lane with new work does.
        this.ready.splice(this.cursor, 1);
        this.park(lane, gate);
        continue;
      }
      const more = lane.runOne(this.onError);
      this.stats.items++;
      if (more) {
        this.cursor++;
      } else {
        this.ready.splice(this.cursor, 1);
      }
      if (this.clock() >= deadline) break;
    }
    const elapsed = this.clock() - started;
    this.stats.slices++;
    if (elapsed > this.stats.longestSliceMs) this.stats.longestSliceMs = elapsed;
    if (this.ready.length > 0) this.schedule();
    else if (this.parked.size === 0) this.wakeIdle();
  }

  private park(lane: IngestLane<unknown>, gate: Promise<void>): void {
    this.stats.parks++;
    this.parked.add(lane);
    const rejoin = () => {
      // A lane closed while parked has already been forgotten.
      if (!this.parked.delete(lane)) return;
      if (lane.queued > 0) this.markReady(lane);
      else if (this.ready.length === 0 && this.parked.size === 0) this.wakeIdle();
    };
    gate.then(rejoin, rejoin);
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = setImmediate(() => this.runSlice());
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** @internal */
  countFailure(): void {
    this.stats.failures++;
  }
}

/** One producer's FIFO of items. */
export class IngestLane<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  private closed = false;
  /** While an item runs it still counts as queued, so a push from inside it does not re-ready the lane. */
  private running = false;
  private drainWaiters: Array<{ below: number; wake: () => void }> = [];

  constructor(
    private readonly scheduler: IngestScheduler,
    readonly name: string,
    private readonly run: (item: T) => void,
    private readonly gate: LaneGate<T> | undefined,
  ) {}

  get queued(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.closed) return;
    const wasEmpty = this.queued === 0;
    this.items.push(item);
    if (wasEmpty) this.scheduler.markReady(this as IngestLane<unknown>);
  }

  /** Resolves once fewer than `below` items wait (at once when that is already so, or the lane closed). */
  queuedBelow(below: number): Promise<void> {
    if (this.queued < below || this.closed) return Promise.resolve();
    return new Promise((wake) => this.drainWaiters.push({ below, wake }));
  }

  /** Drops what is queued; later pushes are ignored. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const listed = this.queued > 0 && !this.running;
    this.items = [];
    this.head = 0;
    // A lane closed by its own running item leaves the ready list through runOne's answer.
    if (listed) this.scheduler.forget(this as IngestLane<unknown>);
    this.wakeDrainWaiters();
  }

  /** @internal what the oldest item must wait for before it runs, or null. */
  gateOfNext(): Promise<void> | null {
    return this.gate ? this.gate(this.items[this.head] as T) : null;
  }

  /** @internal runs the oldest item; returns whether more are queued. */
  runOne(onError: (lane: string, error: unknown) => void): boolean {
    const item = this.items[this.head] as T;
    this.running = true;
    try {
      this.run(item);
    } catch (error) {
      this.scheduler.countFailure();
      onError(this.name, error);
    } finally {
      this.running = false;
    }
    if (this.closed) return false;
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.drainWaiters.length > 0) this.wakeDrainWaiters();
    return !this.closed && this.queued > 0;
  }

  private wakeDrainWaiters(): void {
    const queued = this.queued;
    const still: typeof this.drainWaiters = [];
    for (const waiter of this.drainWaiters) {
      if (this.closed || queued < waiter.below) waiter.wake();
      else still.push(waiter);
    }
    this.drainWaiters = still;
  }
}
