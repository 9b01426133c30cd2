// Reconnect and retry delays. Pure: the random source is injected so tests can pin it, and
// nothing here reads a clock or sets a timer.
//
// The two jitter modes follow the AWS Architecture Blog "Exponential Backoff And Jitter":
//   full:         sleep = random(0, min(cap, base * multiplier^attempt))
//   decorrelated: sleep = min(cap, random(base, previousSleep * multiplier))
// Jitter spreads the reconnects of many clients that lost the same upstream at the same
// moment, so they do not hit it again in lockstep.

export type JitterMode = 'none' | 'full' | 'decorrelated';

export interface BackoffPolicy {
  /** The first delay's ceiling (and the floor of decorrelated delays), ms; > 0. */
  readonly initialMs: number;
  /** No delay exceeds this, ms; >= initialMs. */
  readonly maxMs: number;
  /** Growth per attempt; >= 1. */
  readonly multiplier: number;
  readonly jitter: JitterMode;
}

export const defaultBackoffPolicy: BackoffPolicy = {
  initialMs: 500,
  maxMs: 30_000,
  multiplier: 2,
  jitter: 'full',
};

/** Throws a RangeError naming the bad field: policies come from config, checked once at start. */
export function checkBackoffPolicy(policy: BackoffPolicy): BackoffPolicy {
  if (!(Number.isFinite(policy.initialMs) && policy.initialMs > 0)) {
    throw new RangeError(`backoff.initialMs: must be a finite number > 0, got ${policy.initialMs}`);
  }
  if (!(Number.isFinite(policy.maxMs) && policy.maxMs >= policy.initialMs)) {
    throw new RangeError(`backoff.maxMs: must be a finite number >= initialMs (${policy.initialMs}), got ${policy.maxMs}`);
  }
  if (!(Number.isFinite(policy.multiplier) && policy.multiplier >= 1)) {
    throw new RangeError(`backoff.multiplier: must be a finite number >= 1, got ${policy.multiplier}`);
  }
  if (policy.jitter !== 'none' && policy.jitter !== 'full' && policy.jitter !== 'decorrelated') {
    throw new RangeError(`backoff.jitter: must be 'none', 'full' or 'decorrelated', got ${String(policy.jitter)}`);
  }
  return policy;
}

/**
 * The delay before retry number `attempt` (0 for the first retry). `previousDelayMs` is the
 * delay this function returned for the previous attempt (ignored unless jitter is
 * decorrelated; pass `policy.initialMs` for attempt 0). `random` returns a number in [0, 1).
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, previousDelayMs: number, random: () => number): number {
  const { initialMs, maxMs, multiplier } = policy;
  switch (policy.jitter) {
    case 'none':
      return exponentialCeiling(initialMs, maxMs, multiplier, attempt);
    case 'full':
      return random() * exponentialCeiling(initialMs, maxMs, multiplier, attempt);
    case 'decorrelated': {
      const upper = Math.min(maxMs, Math.max(initialMs, previousDelayMs * multiplier));
      return initialMs + random() * (upper - initialMs);
    }
  }
}

function exponentialCeiling(initialMs: number, maxMs: number, multiplier: number, attempt: number): number {
  // multiplier^attempt overflows to Infinity for large attempts; min() then yields maxMs.
  return Math.min(maxMs, initialMs * multiplier ** attempt);
}

/** The retry state of one thing being retried (a connection, one symbol's resync). */
export class Backoff {
  private attemptCount = 0;
  private previousDelayMs: number;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number,
  ) {
    checkBackoffPolicy(policy);
    this.previousDelayMs = policy.initialMs;
  }

  /** Retries handed out since the last reset. */
  get attempts(): number {
    return this.attemptCount;
  }

  /** The delay to wait before the next retry; advances the attempt count. */
  next(): number {
    const delay = backoffDelayMs(this.policy, this.attemptCount, this.previousDelayMs, this.random);
    this.attemptCount += 1;
    this.previousDelayMs = delay;
    return delay;
  }

  /** Back to the first delay, after the thing being retried has proved healthy. */
  reset(): void {
    this.attemptCount = 0;
    this.previousDelayMs = this.policy.initialMs;
  }
}
