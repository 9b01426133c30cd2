import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ResyncScheduler } from '../../src/ingest/resync.js';

describe('resync scheduling', () => {
  let clock = 0;
  let begun: string[];
  let givenUp: string[];

  beforeEach(() => {
    vi.useFakeTimers();
    clock = 1_000;
    begun = [];
    givenUp = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function scheduler(maxAttempts = 3): ResyncScheduler {
    return new ResyncScheduler(
      { backoff: { initialMs: 100, maxMs: 400, multiplier: 2, jitter: 'none' }, random: () => 0.5, now: () => clock, healthyAfterMs: 5_000, maxAttempts },
      { begin: (symbol) => begun.push(`${symbol}@${clock}`), giveUp: (symbol, attempts) => givenUp.push(`${symbol}x${attempts}`) },
    );
  }

  /** Moves the injected clock and the fake timers together. */
  function advance(ms: number): void {
    clock += ms;
    vi.advanceTimersByTime(ms);
  }

  it('starts the first resync at once, spaces retries by backoff, and gives up past maxAttempts', () => {
    const resync = scheduler();
    resync.request('AAA');
    expect(begun).toEqual(['AAA@1000']);
    resync.request('AAA'); // failed: the retry waits the backoff (100 ms)
    resync.request('AAA'); // already waiting: no second timer
    expect(resync.pendingTimers).toBe(1);
    advance(99);
    expect(begun).toHaveLength(1);
    advance(1);
    expect(begun).toEqual(['AAA@1000', 'AAA@1100']);
    resync.request('AAA');
    advance(200);
    expect(begun.at(-1)).toBe('AAA@1300');
    resync.request('AAA');
    expect(givenUp).toEqual(['AAAx3']);
    expect(resync.started).toBe(3);
  });

  it('starts afresh once a symbol stayed in sync for healthyAfterMs, not before', () => {
    const resync = scheduler();
    resync.request('AAA');
    resync.synced('AAA');
    advance(4_999);
    resync.request('AAA');
    expect(resync.pendingTimers).toBe(1); // attempt 2: waits the backoff
    advance(100);
    resync.synced('AAA');
    advance(5_000);
    resync.request('AAA');
    expect(resync.pendingTimers).toBe(0); // attempt 1 again: at once
    expect(begun).toHaveLength(3);
  });

  it('waits what the venue asked (Retry-After), skips a symbol in flight, and clear() cancels every timer', () => {
    const resync = scheduler();
    resync.request('AAA');
    resync.setInFlight('AAA', true);
    resync.request('AAA');
    expect(resync.pendingTimers).toBe(0);
    resync.setInFlight('AAA', false);
    resync.deferBy('AAA', 2_000);
    resync.request('AAA');
    advance(1_999);
    expect(begun).toHaveLength(1);
    advance(1);
    expect(begun.at(-1)).toBe('AAA@3000');
    resync.request('BBB');
    resync.request('BBB');
    expect(resync.pendingTimers).toBe(1);
    resync.clear();
    expect(resync.pendingTimers).toBe(0);
    advance(10_000);
    expect(begun.filter((entry) => entry.startsWith('BBB'))).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
