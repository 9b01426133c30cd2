import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff, type BackoffPolicy, backoffDelayMs, checkBackoffPolicy } from '../../src/ingest/backoff.js';

const ALMOST_ONE = 1 - 2 ** -53;
const policy = (jitter: BackoffPolicy['jitter']): BackoffPolicy => ({ initialMs: 10, maxMs: 80, multiplier: 2, jitter });
const delays = (backoff: Backoff, count: number): number[] => Array.from({ length: count }, () => backoff.next());

describe('backoffDelayMs', () => {
  it('without jitter doubles from initialMs and stops at maxMs', () => {
    expect(delays(new Backoff(policy('none'), () => 0.5), 7)).toEqual([10, 20, 40, 80, 80, 80, 80]);
  });

  it('with full jitter scales the same ceiling by random() (AWS "full jitter")', () => {
    expect(delays(new Backoff(policy('full'), () => 0.25), 6)).toEqual([2.5, 5, 10, 20, 20, 20]);
    const top = delays(new Backoff(policy('full'), () => ALMOST_ONE), 5);
    [10, 20, 40, 80, 80].forEach((ceiling, i) => expect(top[i]).toBeCloseTo(ceiling, 9));
    expect(delays(new Backoff(policy('full'), () => 0), 3)).toEqual([0, 0, 0]);
  });

  it('with decorrelated jitter draws between initialMs and multiplier x the previous delay, capped', () => {
    // random() near 1 takes the top of each range: 10*2, 20*2, 40*2, then the cap.
    const top = delays(new Backoff(policy('decorrelated'), () => ALMOST_ONE), 5);
    [20, 40, 80, 80, 80].forEach((expected, i) => expect(top[i]).toBeCloseTo(expected, 9));
    expect(delays(new Backoff(policy('decorrelated'), () => 0), 3)).toEqual([10, 10, 10]);
    // Halfway: 10 + 0.5 * (20 - 10) = 15, then 10 + 0.5 * (30 - 10) = 20, then 10 + 0.5 * (40 - 10) = 25.
    expect(delays(new Backoff(policy('decorrelated'), () => 0.5), 3)).toEqual([15, 20, 25]);
  });

  it('reset() starts again from the first delay', () => {
    const backoff = new Backoff(policy('none'), () => 0.5);
    delays(backoff, 4);
    expect(backoff.attempts).toBe(4);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(10);
  });

  it('stays within [0, maxMs] for any valid policy, attempt and random draw', () => {
    const policies = fc.record({
      initialMs: fc.double({ min: 0.001, max: 1e4, noNaN: true }),
      extraMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
      multiplier: fc.double({ min: 1, max: 10, noNaN: true }),
      jitter: fc.constantFrom('none' as const, 'full' as const, 'decorrelated' as const),
    });
    fc.assert(
      fc.property(policies, fc.array(fc.double({ min: 0, max: ALMOST_ONE, noNaN: true }), { minLength: 1, maxLength: 200 }), (p, draws) => {
        const chosen: BackoffPolicy = { initialMs: p.initialMs, maxMs: p.initialMs + p.extraMs, multiplier: p.multiplier, jitter: p.jitter };
        let previous = chosen.initialMs;
        draws.forEach((draw, attempt) => {
          const delay = backoffDelayMs(chosen, attempt, previous, () => draw);
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(chosen.maxMs * (1 + 1e-12));
          if (chosen.jitter === 'decorrelated') expect(delay).toBeGreaterThanOrEqual(chosen.initialMs * (1 - 1e-12));
          previous = delay;
        });
      }),
    );
  });

  it('holds the cap even when multiplier^attempt overflows', () => {
    expect(backoffDelayMs(policy('none'), 5000, 10, () => 0.5)).toBe(80);
    expect(backoffDelayMs(policy('full'), 5000, 10, () => 0.5)).toBe(40);
  });
});

describe('checkBackoffPolicy', () => {
  it('names the bad field and value', () => {
    expect(() => checkBackoffPolicy({ ...policy('none'), initialMs: -1 })).toThrow('backoff.initialMs: must be a finite number > 0, got -1');
    expect(() => checkBackoffPolicy({ ...policy('none'), maxMs: 5 })).toThrow('backoff.maxMs: must be a finite number >= initialMs (10), got 5');
    expect(() => checkBackoffPolicy({ ...policy('none'), multiplier: 0.5 })).toThrow('backoff.multiplier: must be a finite number >= 1, got 0.5');
    expect(() => checkBackoffPolicy({ ...policy('none'), jitter: 'some' as never })).toThrow("backoff.jitter: must be 'none', 'full' or 'decorrelated', got some");
    expect(checkBackoffPolicy(policy('full'))).toEqual(policy('full'));
  });
});
