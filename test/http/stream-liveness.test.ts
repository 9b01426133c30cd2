// The prediction stream's two ways of ending a connection the server cannot serve: a slow
// reader is told why (1013) however slowly it reads, and a client that stopped answering pings
// (half-open: its host vanished) is dropped. Waits are on events and counters, not speed.
import { describe, expect, it } from 'vitest';
import { streamStatsOf, type StreamLimits } from '../../src/http/ws.js';
import { amznSnapshot, Client, startService, startStreamOnly, waitFor } from './ws-harness.js';

type RawSocket = { pause(): void; resume(): void };
const rawSocketOf = (client: Client): RawSocket => (client.socket as unknown as { _socket: RawSocket })._socket;

describe('WS /v1/stream liveness', () => {
  it('delivers the 1013 close to a subscriber that reads, but too slowly, long after it was closed', async () => {
    const limits: StreamLimits = { sendBufferBytes: 4 * 1024 * 1024, stuckMs: 150, drainIntervalMs: 20, ingestReplyBufferBytes: 1 << 20 };
    const { url, runtime } = await startStreamOnly({ subscriberQueue: 16 }, limits);
    const stats = streamStatsOf(runtime);
    const client = await Client.connect(`${url}/v1/stream`);
    await client.command({ subscribe: ['AMZN'] });
    const raw = rawSocketOf(client);
    raw.pause();
    let pushed = 0;
    while (stats.slowClosed === 0) {
      for (let i = 0; i < 200; i++) runtime.process(amznSnapshot(pushed++));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Now read in short bursts: the client keeps making progress, well past stuckMs after the close.
    const closedAt = Date.now();
    while (client.closed === null && Date.now() - closedAt < 60_000) {
      raw.resume();
      await new Promise((resolve) => setImmediate(resolve));
      raw.pause();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    raw.resume();
    await client.until(() => client.closed !== null, 10_000);
    expect(client.closed).toEqual({ code: 1013, reason: expect.stringContaining('too slow') });
    expect(Date.now() - closedAt).toBeGreaterThan(limits.stuckMs);
  }, 90_000);

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
