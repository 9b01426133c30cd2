// The scheduler's promises, run by hand (runSlice) or on the event loop: lanes take turns one
// item at a time, a slice ends at its budget, an item that throws costs only itself.
import { describe, expect, it } from 'vitest';
import { IngestScheduler } from '../../src/service/ingest-scheduler.js';

describe('IngestScheduler', () => {
  it('serves lanes round-robin, one item each per turn, whatever their backlog', () => {
    const now = 0;
    const scheduler = new IngestScheduler({ sliceMs: 1_000, clock: () => now });
    const order: string[] = [];
    const flood = scheduler.lane<number>('flood', (i) => order.push(`flood ${i}`));
    const polite = scheduler.lane<number>('polite', (i) => order.push(`polite ${i}`));
    for (let i = 0; i < 1000; i++) flood.push(i);
    polite.push(0);
    scheduler.runSlice();
    expect(order.slice(0, 3)).toEqual(['flood 0', 'polite 0', 'flood 1']);
    expect(order).toHaveLength(1001);
    expect(scheduler.queued).toBe(0);
  });

  it('ends a slice at its budget and yields; the rest runs on later turns of the event loop', async () => {
    let now = 0;
    const scheduler = new IngestScheduler({ sliceMs: 4, clock: () => now });
    let ran = 0;
    const lane = scheduler.lane<number>('work', () => {
      ran++;
      now += 1; // every item costs 1 ms
    });
    for (let i = 0; i < 20; i++) lane.push(i);
    scheduler.runSlice();
    expect(ran).toBe(4);
    await scheduler.idle();
    expect(ran).toBe(20);
    expect(scheduler.stats.longestSliceMs).toBe(4);
    expect(scheduler.stats.slices).toBeGreaterThanOrEqual(5);
  });

  it('parks a lane whose gate says wait, serves the others, and brings it back when the gate opens', async () => {
    let open: () => void = () => {};
    let gateShut = true;
    const scheduler = new IngestScheduler();
    const order: string[] = [];
    const gated = scheduler.lane<number>(
      'gated',
      (item) => order.push(`gated${item}`),
      () => (gateShut ? new Promise<void>((resolve) => (open = resolve)) : null),
    );
    const free = scheduler.lane<number>('free', (item) => order.push(`free${item}`));
    for (let i = 0; i < 3; i++) gated.push(i);
    for (let i = 0; i < 3; i++) free.push(i);
    scheduler.runSlice();
    expect(order).toEqual(['free0', 'free1', 'free2']);
    expect(scheduler.parkedLanes).toBe(1);
    expect(scheduler.queued).toBe(3);
    let idle = false;
    void scheduler.idle().then(() => (idle = true));
    await new Promise((resolve) => setImmediate(resolve));
    // Parked work is still work: the scheduler is not idle.
    expect(idle).toBe(false);
    gateShut = false;
    open();
    await scheduler.idle();
    expect(order).toEqual(['free0', 'free1', 'free2', 'gated0', 'gated1', 'gated2']);
    expect(scheduler.stats.parks).toBe(1);
  });

  it('forgets a lane closed while parked', async () => {
    const scheduler = new IngestScheduler();
    let ran = 0;
    const lane = scheduler.lane<number>(
      'gated',
      () => ran++,
      () => new Promise<void>(() => {}),
    );
    lane.push(1);
    scheduler.runSlice();
    expect(scheduler.parkedLanes).toBe(1);
    lane.close();
    expect(scheduler.parkedLanes).toBe(0);
    await scheduler.idle();
    expect(ran).toBe(0);
  });

  it('drops an item that throws, reports it, and goes on with the lane', async () => {
    const errors: string[] = [];
    const scheduler = new IngestScheduler({ onError: (lane, error) => errors.push(`${lane}: ${(error as Error).message}`) });
    const done: number[] = [];
    const lane = scheduler.lane<number>('w', (i) => {
      if (i === 1) throw new Error('bad item');
      done.push(i);
    });
    [0, 1, 2].forEach((i) => lane.push(i));
    await scheduler.idle();
    expect(done).toEqual([0, 2]);
    expect(errors).toEqual(['w: bad item']);
    expect(scheduler.stats.failures).toBe(1);
  });

  it('a closed lane drops what it holds and wakes its waiters; pushes from inside an item keep their order', async () => {
    const scheduler = new IngestScheduler();
    const seen: number[] = [];
    const lane = scheduler.lane<number>('w', (i) => {
      seen.push(i);
      if (i === 0) lane.push(99);
      if (i === 2) lane.close();
    });
    [0, 1, 2, 3, 4].forEach((i) => lane.push(i));
    const drained = lane.queuedBelow(1);
    await scheduler.idle();
    await drained;
    expect(seen).toEqual([0, 1, 2]);
    expect(lane.queued).toBe(0);
    lane.push(5);
    await scheduler.idle();
    expect(seen).toEqual([0, 1, 2]);
  });
});
