// The prediction stream's two ways of ending a connection the server cannot serve: a slow
// reader is told why (1013) however slowly it reads, and a client that stopped answering pings
// (half-open: its host vanished) is dropped. Waits are on events and counters, not speed.
import { describe, expect, it } from 'vitest';
import { streamStatsOf, type StreamLimits } from '../../src/http/ws.js';
import { amznSnapshot, Client, startService, startStreamOnly, waitFor } from './ws-harness.js';

type RawSocket = { pause(): void; resume(): void };
const rawSocketOf = (client: Client): RawSocket => (client.socket as unknown as { _socket: RawSocket })._socket;

describe('WS /v1/stream liveness', () => {
  it('delivers the 1013 close to a subscriber that starts reading again long after it was closed; cuts off one that never does', async () => {
    const limits: StreamLimits = { sendBufferBytes: 64 * 1024, stuckMs: 200, drainIntervalMs: 20, ingestReplyBufferBytes: 1 << 20, closeGraceMs: 3000 };
    const { url, runtime } = await startStreamOnly({ subscriberQueue: 16 }, limits);
    const stats = streamStatsOf(runtime);
    const late = await Client.connect(`${url}/v1/stream`);
    const gone = await Client.connect(`${url}/v1/stream`);
    for (const client of [late, gone]) {
      await client.command({ subscribe: ['AMZN'] });
      rawSocketOf(client).pause();
    }
    let pushed = 0;
    while (stats.slowClosed < 2) {
      for (let i = 0; i < 200; i++) runtime.process(amznSnapshot(pushed++));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Well past stuckMs after the close (where it used to be cut off), the late reader reads on.
    await new Promise((resolve) => setTimeout(resolve, 5 * limits.stuckMs));
    rawSocketOf(late).resume();
    await late.until(() => late.closed !== null, 10_000);
    expect(late.closed).toEqual({ code: 1013, reason: expect.stringContaining('too slow') });
    // The one that never reads again is cut off once the grace is over.
    await waitFor(() => stats.slowTerminated === 1, 10_000);
    rawSocketOf(gone).resume();
    await gone.until(() => gone.closed !== null, 10_000);
    expect(gone.closed?.code).toBe(1006);
    await waitFor(() => stats.subscribers === 0);
  }, 30_000);

  it('terminates a client that does not answer pings, and keeps one that does', async () => {
    const { url, runtime } = await startService({ streamPingSeconds: 0.1 });
    const silent = await Client.connect(`${url}/v1/stream`, {}, { autoPong: false });
    const alive = await Client.connect(`${url}/v1/stream`);
    await silent.until(() => silent.closed !== null, 5000);
    expect(silent.closed?.code).toBe(1006);
    expect(streamStatsOf(runtime).halfOpenClosed).toBe(1);
    // Several more ping rounds: the answering client stays.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(alive.closed).toBeNull();
    expect(await alive.command({ subscribe: ['AMZN'] })).toEqual({ type: 'subscriptions', symbols: ['AMZN'] });
    await waitFor(() => streamStatsOf(runtime).subscribers === 1);
  });
});
