// When to bring a symbol's book back in sync (a REST snapshot or a resubscription), per symbol and
// per connection: the first attempt at once, retries spaced by backoff (or by what a 429/418
// asked), attempts counted afresh once a symbol stayed in sync for healthyAfterMs, and past
// maxResyncAttempts the connection is given up, so a persistent failure costs one reconnect
// backoff per round, never a hot loop. What a resync does is the caller's (`begin`); the REST
// fetch with its deadline and Retry-After reading is here too (`fetchSnapshot`).
import { sampleOf } from '../domain/types.js';
import { Backoff, type BackoffPolicy } from './backoff.js';

export interface ResyncSettings {
  readonly backoff: BackoffPolicy;
  readonly random: () => number;
  readonly now: () => number;
  readonly healthyAfterMs: number;
  readonly maxAttempts: number;
}

export interface ResyncActions {
  /** Resync `symbol` now: fetch a snapshot (calling `finished` when done) or resubscribe. */
  begin(symbol: string): void;
  /** `symbol` failed `attempts` times in a row: rebuild the connection. */
  giveUp(symbol: string, attempts: number): void;
}

interface ResyncState {
  attempts: number;
  inFlight: boolean;
  timer: NodeJS.Timeout | undefined;
  backoff: Backoff;
  /** now() when the symbol last came into sync; NaN while it never has on this connection. */
  syncedAt: number;
  /** now() before which the venue asked not to be asked again (Retry-After on 429 or 418). */
  notBefore: number;
}

export class ResyncScheduler {
  private readonly states = new Map<string, ResyncState>();
  private startedCount = 0;

  constructor(
    private readonly settings: ResyncSettings,
    private readonly actions: ResyncActions,
  ) {}

  /** Resyncs started, the first sync of each symbol included, over every connection. */
  get started(): number {
    return this.startedCount;
  }

  /** Timers waiting to start a resync (0 once `clear` ran). */
  get pendingTimers(): number {
    let count = 0;
    for (const state of this.states.values()) if (state.timer !== undefined) count += 1;
    return count;
  }

  /** Brings `symbol` back in sync, unless a resync of it is already waiting or under way. */
  request(symbol: string): void {
    const { settings } = this;
    let state = this.states.get(symbol);
    if (state === undefined) {
      state = {
        attempts: 0,
        inFlight: false,
        timer: undefined,
        backoff: new Backoff(settings.backoff, settings.random),
        syncedAt: Number.NaN,
        notBefore: Number.NEGATIVE_INFINITY,
      };
      this.states.set(symbol, state);
    }
    if (state.inFlight || state.timer !== undefined) return;
    if (settings.now() - state.syncedAt >= settings.healthyAfterMs) {
      state.attempts = 0;
      state.backoff.reset();
    }
    if (state.attempts >= settings.maxAttempts) {
      this.actions.giveUp(symbol, state.attempts);
      return;
    }
    const delay = Math.max(state.attempts === 0 ? 0 : state.backoff.next(), state.notBefore - settings.now());
    state.attempts += 1;
    this.startedCount += 1;
    const due = state;
    const begin = (): void => {
      due.timer = undefined;
      this.actions.begin(symbol);
    };
    if (delay === 0) begin();
    else state.timer = setTimeout(begin, delay);
  }

  /** A snapshot fetch for `symbol` is under way (no second one starts) or over. */
  setInFlight(symbol: string, inFlight: boolean): void {
    const state = this.states.get(symbol);
    if (state !== undefined) state.inFlight = inFlight;
  }

  /** The venue asked to wait `ms` before the next request for `symbol`. */
  deferBy(symbol: string, ms: number): void {
    const state = this.states.get(symbol);
    if (state !== undefined) state.notBefore = this.settings.now() + ms;
  }

  /** `symbol` came into sync now. */
  synced(symbol: string): void {
    const state = this.states.get(symbol);
    if (state !== undefined) state.syncedAt = this.settings.now();
  }

  /** The connection ended: every waiting resync is cancelled and every count starts afresh. */
  clear(): void {
    for (const state of this.states.values()) clearTimeout(state.timer);
    this.states.clear();
  }
}

/** What a REST snapshot request gave: the body, or why not (and how long the venue asked to wait). */
export type SnapshotFetch = { readonly ok: true; readonly body: string } | { readonly ok: false; readonly failure: string; readonly retryAfterMs: number | null };

/**
 * GETs `url` within `timeoutMs` (headers and body; without it undici waits up to 300 s), or until
 * `connection` aborts (then it throws, as fetch does). A 429 or 418 answer says when to come back.
 */
export async function fetchSnapshot(fetchImpl: typeof globalThis.fetch, url: string, timeoutMs: number, connection: AbortSignal, now: () => number): Promise<SnapshotFetch> {
  const timeout = AbortSignal.timeout(timeoutMs);
  let response: Response;
  let body: string;
  try {
    response = await fetchImpl(url, { signal: AbortSignal.any([connection, timeout]) });
    body = await response.text();
  } catch (error) {
    if (timeout.aborted && !connection.aborted) return { ok: false, failure: `no answer within ${timeoutMs} ms`, retryAfterMs: null };
    throw error;
  }
  if (response.ok) return { ok: true, body };
  let failure = `HTTP ${response.status}: ${sampleOf(body, 120)}`;
  // 429: too many requests; 418: Binance's ban for not backing off. Both say when to come back.
  const wait = response.status === 429 || response.status === 418 ? retryAfterMs(response.headers.get('retry-after'), now()) : null;
  if (wait !== null) failure += ` (retry after ${Math.round(wait)} ms)`;
  return { ok: false, failure, retryAfterMs: wait };
}

/**
 * The wait a 429 or 418 answer asks for, ms: Retry-After in seconds or as an HTTP date; absent
 * or unreadable, null (the backoff alone spaces the retry).
 */
export function retryAfterMs(header: string | null, nowMs: number): number | null {
  if (header === null || header.trim() === '') return null;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : null;
}
