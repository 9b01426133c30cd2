// How much of a push producer's input the service reads ahead of its acks: about two frames'
// worth of messages, counted in messages rather than frames. A producer of full frames has its
// socket paused (TCP slows it down); a producer of one snapshot per frame is not, so on worker
// threads, where each ack waits for a prediction made on another thread, its frames do not
// queue behind one another's acks.
import { describe, expect, it } from 'vitest';
import { amznTick, Client, startService } from './ws-harness.js';

const MAX_BATCH = 20;

describe('WS /v1/ingest read-ahead', () => {
  it('pauses a producer past a frame of unanswered messages, never one of small frames below it', async () => {
    const { runtime, app, url } = await startService({ workers: 2, ingestMaxBatch: MAX_BATCH });
    // Acks held back, as a busy worker would hold them: what is read is then only the window's doing.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    runtime.settled = () => held;
    try {
      const small = await Client.connect(`${url}/v1/ingest`);
      const smallFrames = MAX_BATCH - 1;
      for (let i = 0; i < smallFrames; i++) small.send({ ...amznTick(i), symbol: 'SMALL' });
      await expect.poll(() => runtime.engine.counters.accepted, { timeout: 20_000 }).toBe(smallFrames);
      expect(small.of('ack')).toHaveLength(0);

      const big = await Client.connect(`${url}/v1/ingest`);
      for (let frame = 0; frame < 4; frame++) big.send(Array.from({ length: MAX_BATCH }, (_, i) => ({ ...amznTick(frame * MAX_BATCH + i), symbol: 'BIG' })));
      await expect.poll(() => runtime.engine.counters.accepted, { timeout: 20_000 }).toBeGreaterThanOrEqual(smallFrames + 2 * MAX_BATCH);

      const [smallServer, bigServer] = [...app.websocketServer.clients];
      expect(bigServer.isPaused).toBe(true);
      // Nineteen frames unanswered, and still read: fewer messages than one full frame.
      expect(smallServer.isPaused).toBe(false);

      release();
      await small.until(() => small.of('ack').length === smallFrames, 20_000);
      await big.until(() => big.of('ack').length === 4, 20_000);
      expect(bigServer.isPaused).toBe(false);
      expect(big.of('ack').flatMap((ack) => ack.accepted as unknown[])).toHaveLength(4 * MAX_BATCH);
    } finally {
      release();
    }
  });
});
