import { expect } from 'vitest';
import type { Trade } from '../../src/domain/types.js';

/** What every trade a venue mapper emits must be: finite times, a price and a size > 0, a side. */
export function expectSoundTrade(trade: Trade): void {
  expect(Number.isFinite(trade.price) && trade.price > 0).toBe(true);
  expect(Number.isFinite(trade.size) && trade.size > 0).toBe(true);
  expect(Number.isFinite(trade.ts) && Number.isFinite(trade.localTs)).toBe(true);
  expect([1, -1]).toContain(trade.aggressor);
}
