// The WebSocket routes over real sockets on 127.0.0.1: push ingest (acks, error frames, token,
// frame size, rate limit) and the prediction stream (subscriptions, conflation of a slow
// subscriber, closing a stuck one, listeners released on close). Books are the recorded
// LOBSTER excerpts in fixtures/ (AMZN via the canonical JSONL, AAPL via the LOBSTER reader).
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { streamStatsOf, type StreamLimits } from '../../src/http/ws.js';
import { acceptedSeqs, AMZN, amznSnapshot, amznTick, Client, readAapl, startService, startStreamOnly, waitFor } from './ws-harness.js';

describe('WS /v1/ingest', () => {
  it('acks every good snapshot with its seq, answers every bad frame and keeps the connection', async () => {
    const { url, runtime } = await startService();
    const producer = await Client.connect(`${url}/v1/ingest`);
    const negativeSize = structuredClone(AMZN[1]);
    negativeSize.bids[0][1] = -5;
    const crossed = structuredClone(AMZN[1]);
    crossed.bids[0][0] = crossed.asks[0][0] + 0.01;
    const { symbol: _dropped, ...withoutSymbol } = AMZN[3];

    producer.send(AMZN[0]); // frame 1
    producer.send('{"symbol":"AMZN",'); // frame 2: malformed
    producer.send(negativeSize); // frame 3: schema
    producer.send(crossed); // frame 4: crossed book
    producer.send([AMZN[1], AMZN[2]]); // frame 5: two good ones
    producer.send(AMZN[0]); // frame 6: replayed: out of order
    producer.send([AMZN[3], withoutSymbol, AMZN[4]]); // frame 7: one bad element among good ones
    producer.send(AMZN[5]); // frame 8
    await producer.until(() => producer.of('ack').some((ack) => ack.frame === 8));

    expect(acceptedSeqs(producer)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(producer.of('ack').map((ack) => ack.frame)).toEqual([1, 3, 4, 5, 6, 7, 8]);
    expect(producer.of('ack')[0]).toEqual({ type: 'ack', frame: 1, accepted: [{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: 0 }] });
    const errors = producer.of('error').map((e) => ({ frame: e.frame, reason: e.reason, detail: String(e.detail) }));
    expect(errors.map((e) => [e.frame, e.reason])).toEqual([
      [2, 'malformed_json'],
      [3, 'schema'],
      [4, 'crossed_book'],
      [6, 'out_of_order'],
      [7, 'schema'],
    ]);
    expect(errors[1].detail).toContain('bids.0.1');
    expect(errors[2].detail).toContain('bids[0][0]');
    expect(errors[3].detail).toContain('seq: 0');
    expect(errors[4].detail).toContain('1.symbol');
    // The error frames of a frame come before its ack.
    const frame7 = producer.received.filter((r) => r.frame === 7).map((r) => r.type);
    expect(frame7).toEqual(['error', 'ack']);
    expect(producer.socket.readyState).toBe(WebSocket.OPEN);
    expect(runtime.engine.symbol('push:AMZN')?.ticks).toBe(6);
    expect(runtime.engine.counters.rejected).toMatchObject({ malformed_json: 1, schema: 2, crossed_book: 1, out_of_order: 1 });
    expect(runtime.engine.symbol('push:AMZN')?.lastPrediction?.mid).toBeCloseTo((AMZN[5].bids[0][0] + AMZN[5].asks[0][0]) / 2, 9);
  });

  it('refuses the upgrade with 401 unless the bearer token matches, when one is set', async () => {
    const token = 'a-token-of-sufficient-length';
    const { url } = await startService({ token });
    await expect(Client.connect(`${url}/v1/ingest`)).rejects.toThrow('HTTP 401');
    await expect(Client.connect(`${url}/v1/ingest`, { authorization: 'Bearer not-the-token-at-all-x' })).rejects.toThrow('HTTP 401');
    const producer = await Client.connect(`${url}/v1/ingest`, { authorization: `Bearer ${token}` });
    producer.send(AMZN[0]);
    await producer.until(() => producer.of('ack').length === 1);
    expect(acceptedSeqs(producer)).toEqual([0]);
    // The stream is read-only and stays open to all.
    const subscriber = await Client.connect(`${url}/v1/stream`);
    expect(await subscriber.command({ subscribe: ['AMZN'] })).toEqual({ type: 'subscriptions', symbols: ['AMZN'] });
  });

  it('closes with 1009 on a frame over wsMaxFrameBytes; other connections are unaffected', async () => {
    const { url } = await startService({ wsMaxFrameBytes: 4096 });
    const bystander = await Client.connect(`${url}/v1/ingest`);
    const producer = await Client.connect(`${url}/v1/ingest`);
    const big = JSON.stringify(AMZN.slice(0, 40));
    expect(big.length).toBeGreaterThan(4096);
    producer.send(big);
    await producer.until(() => producer.closed !== null);
    expect(producer.closed?.code).toBe(1009);
    expect(producer.of('ack')).toHaveLength(0);
    bystander.send(AMZN.slice(0, 10));
    await bystander.until(() => bystander.of('ack').length === 1);
    expect(acceptedSeqs(bystander)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('drops frames over the rate with rate_limited, and closes a producer that keeps flooding with 1008', async () => {
    const { url, runtime } = await startService({ ingestRatePerSecond: 5 });
    const producer = await Client.connect(`${url}/v1/ingest`);
    for (let i = 0; i < 9; i++) producer.send(amznTick(i));
    await producer.until(() => producer.of('ack').length + producer.of('error').length === 9);
    const limited = producer.of('error').filter((e) => e.reason === 'rate_limited');
    // A burst of 5 is allowed; refill during the burst may admit one or two more.
    expect(producer.of('ack').length).toBeGreaterThanOrEqual(5);
    expect(limited.length).toBeGreaterThanOrEqual(1);
    expect(limited.length + producer.of('ack').length).toBe(9);
    expect(producer.socket.readyState).toBe(WebSocket.OPEN);
    expect(streamStatsOf(runtime).rateLimited).toBe(limited.length);

    const flooder = await Client.connect(`${url}/v1/ingest`);
    for (let i = 0; i < 40; i++) flooder.send(amznTick(100 + i));
    await flooder.until(() => flooder.closed !== null);
    expect(flooder.closed?.code).toBe(1008);
    expect(flooder.closed?.reason).toContain('rate limit');
    expect(producer.socket.readyState).toBe(WebSocket.OPEN);
  });
});

describe('WS /v1/stream', () => {
  it('sends each subscriber the predictions of its symbols only, in order, until it unsubscribes', async () => {
    const { url, runtime } = await startService();
    const aapl = await readAapl(20);
    const amznClient = await Client.connect(`${url}/v1/stream`);
    const aaplClient = await Client.connect(`${url}/v1/stream`);
    const aaplStreamClient = await Client.connect(`${url}/v1/stream`);
    expect(await amznClient.command({ subscribe: ['AMZN'] })).toEqual({ type: 'subscriptions', symbols: ['AMZN'] });
    expect(await aaplClient.command({ subscribe: ['AAPL', 'MSFT'] })).toEqual({ type: 'subscriptions', symbols: ['AAPL', 'MSFT'] });
    // A stream id subscribes to that venue's stream alone.
    expect(await aaplStreamClient.command({ subscribe: ['push:AAPL'] })).toEqual({ type: 'subscriptions', symbols: ['push:AAPL'] });

    for (let i = 0; i < 20; i++) runtime.ingest([AMZN[i], aapl[i]]);
    await amznClient.until(() => amznClient.of('prediction').length === 20);
    await aaplClient.until(() => aaplClient.of('prediction').length === 20);
    await aaplStreamClient.until(() => aaplStreamClient.of('prediction').length === 20);
    expect(amznClient.of('prediction').map((p) => [p.stream, p.venue, p.symbol, p.seq])).toEqual(AMZN.slice(0, 20).map((row) => ['push:AMZN', 'push', 'AMZN', row.seq]));
    expect(aaplClient.of('prediction').map((p) => [p.stream, p.venue, p.symbol, p.seq])).toEqual(aapl.map((row) => ['push:AAPL', 'push', 'AAPL', row.seq]));
    expect(aaplStreamClient.of('prediction').map((p) => [p.stream, p.seq])).toEqual(aapl.map((row) => ['push:AAPL', row.seq]));
    // The frame is the REST view of the prediction.
    const last = amznClient.of('prediction')[19];
    expect(last.mid).toBeCloseTo((AMZN[19].bids[0][0] + AMZN[19].asks[0][0]) / 2, 9);
    const models = last.models as Array<{ model: string; probs: Record<string, number> }>;
    expect(models.map((m) => m.model)).toEqual(['logistic', 'majority']);
    for (const { probs } of models) expect(Object.values(probs).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);

    expect(await amznClient.command({ unsubscribe: ['AMZN'] })).toEqual({ type: 'subscriptions', symbols: [] });
    for (let i = 20; i < 30; i++) runtime.ingest(AMZN[i]);
    // A round trip after the pushes: any prediction sent to it would have arrived first.
    expect(await amznClient.command({ subscribe: ['MSFT'] })).toEqual({ type: 'subscriptions', symbols: ['MSFT'] });
    expect(amznClient.of('prediction')).toHaveLength(20);
    expect(runtime.engine.symbol('push:AMZN')?.ticks).toBe(30);
  });

  it('answers bad commands with an error frame and stays open', async () => {
    const { url } = await startService({ maxSymbols: 3 });
    const client = await Client.connect(`${url}/v1/stream`);
    expect(await client.command('subscribe AMZN')).toMatchObject({ type: 'error', reason: 'malformed_json' });
    const wrongShape = await client.command({ subscribe: 'AMZN' });
    expect(wrongShape).toMatchObject({ type: 'error', reason: 'schema' });
    expect(String(wrongShape.detail)).toContain('subscribe');
    expect(await client.command({ subscribe: [] })).toMatchObject({ type: 'error', reason: 'schema' });
    expect(await client.command({ subscribe: ['A', 'B', 'C', 'D'] })).toMatchObject({ type: 'error', reason: 'schema' });
    expect(await client.command({ subscribe: ['AMZN'] })).toEqual({ type: 'subscriptions', symbols: ['AMZN'] });
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });

  it('conflates a subscriber that stops reading, within a bounded queue, and closes it with 1013 when it stays stuck', async () => {
    const limits: StreamLimits = { sendBufferBytes: 64 * 1024, stuckMs: 1000, drainIntervalMs: 20, ingestReplyBufferBytes: 1 << 20, closeGraceMs: 30_000 };
    const queueLimit = 16;
    const { url, runtime, app } = await startStreamOnly({ subscriberQueue: queueLimit }, limits);
    const stats = streamStatsOf(runtime);
    const client = await Client.connect(`${url}/v1/stream`);
    await client.command({ subscribe: ['AMZN'] });
    const [serverSocket] = [...app.websocketServer.clients];

    // Phase 1: stop reading until the server conflates, then read again.
    (client.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    let pushed = 0;
    let peakQueued = 0;
    let peakBuffered = 0;
    while (stats.conflated === 0 && pushed < 200_000) {
      for (let i = 0; i < 500; i++) runtime.process(amznSnapshot(pushed++));
      peakQueued = Math.max(peakQueued, stats.queued);
      peakBuffered = Math.max(peakBuffered, serverSocket.bufferedAmount);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(stats.conflated).toBeGreaterThan(0);
    expect(peakQueued).toBeLessThanOrEqual(queueLimit);
    // Writes stop at the threshold: at most one frame beyond it is ever buffered.
    expect(peakBuffered).toBeLessThan(limits.sendBufferBytes + 4096);
    (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    await client.until(() => client.received.at(-1)?.seq === pushed - 1, 10_000);

    // Every prediction was either delivered or counted as conflated in a later frame.
    const delivered = client.of('prediction');
    const reported = delivered.reduce((sum, p) => sum + (typeof p.conflated === 'number' ? p.conflated : 0), 0);
    expect(delivered.length + reported).toBe(pushed);
    expect(reported).toBe(stats.conflated);
    const seqs = delivered.map((p) => p.seq as number);
    expect(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1])).toBe(true);
    expect(stats.queued).toBe(0);
    // What the conflated predictions resolved came in the frames kept: every scored one, once, in order.
    const runs = delivered.flatMap((p) => (p.resolved as Array<{ fromSeq: number; toSeq: number; count: number }> | undefined) ?? []);
    expect(runs.reduce((sum, run) => sum + run.count, 0)).toBe(runtime.engine.symbol('push:AMZN')!.metrics[0].summary().n);
    expect(runs.every((run, i) => run.count === run.toSeq - run.fromSeq + 1 && (i === 0 || run.fromSeq > runs[i - 1].toSeq))).toBe(true);

    // Phase 2: stop reading for good: closed with 1013 and released.
    (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const conflatedBefore = stats.conflated;
    while (stats.conflated === conflatedBefore && pushed < 400_000) {
      for (let i = 0; i < 500; i++) runtime.process(amznSnapshot(pushed++));
      expect(stats.queued).toBeLessThanOrEqual(queueLimit);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // Predictions keep coming while it stays unread (kernel buffers may absorb a little more first).
    const closeDeadline = Date.now() + limits.stuckMs + 5000;
    while (stats.slowClosed === 0 && Date.now() < closeDeadline) {
      for (let i = 0; i < 100; i++) runtime.process(amznSnapshot(pushed++));
      expect(stats.queued).toBeLessThanOrEqual(queueLimit);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(stats.slowClosed).toBe(1);
    expect(stats.queued).toBe(0);
    (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    await client.until(() => client.closed !== null, 10_000);
    expect(client.closed?.code).toBe(1013);
    expect(client.closed?.reason).toContain('too slow');
    await waitFor(() => runtime.subscriberCount === 0);
    expect(stats.subscribers).toBe(0);
  });

  it('removes the runtime listener when a subscriber disconnects', async () => {
    const { url, runtime } = await startService();
    const clients = await Promise.all([1, 2, 3].map(() => Client.connect(`${url}/v1/stream`)));
    expect(runtime.subscriberCount).toBe(3);
    expect(streamStatsOf(runtime).subscribers).toBe(3);
    clients[0].socket.close();
    clients[1].socket.terminate();
    await waitFor(() => runtime.subscriberCount === 1);
    expect(streamStatsOf(runtime).subscribers).toBe(1);
    await clients[2].command({ subscribe: ['AMZN'] });
    runtime.ingest(AMZN[0]);
    await clients[2].until(() => clients[2].of('prediction').length === 1);
    clients[2].socket.close();
    await waitFor(() => runtime.subscriberCount === 0);
  });
});
