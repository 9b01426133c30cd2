// Input as an attacker sends it, over real sockets on 127.0.0.1: frames that used to throw while
// being described, frames too large for one turn of the event loop, floods, too many
// connections, impossible timestamps and ill-formed symbols. Each case holds on ordering and
// counts, never on how fast the machine is.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { streamStatsOf } from '../../src/http/ws.js';
import { ServiceRuntime } from '../../src/service/runtime.js';
import { AMZN, amznTick, Client, startService, type CanonicalRow } from './ws-harness.js';

const deepArrays = `${'['.repeat(5000)}${']'.repeat(5000)}`;
function deepObject(depth: number): string {
  let nested = '1';
  for (let i = 0; i < depth; i++) nested = `{"x":${nested}}`;
  return `{"toString":1,"a":${nested}}`;
}

async function httpPost(base: string, path: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(base.replace(/^ws/, 'http') + path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('frames that used to kill the process', () => {
  it('answers 5,000-deep arrays and a deep object with a toString key with too_deep, and keeps ingesting', async () => {
    const { url, runtime } = await startService();
    const producer = await Client.connect(`${url}/v1/ingest`);
    producer.send(deepArrays);
    producer.send(deepObject(5000));
    producer.send(AMZN[0]);
    await producer.until(() => producer.of('ack').length === 1);
    expect(producer.of('error').map((e) => e.reason)).toEqual(['too_deep', 'too_deep']);
    expect(producer.of('error')[0].detail).toMatch(/^frame 1: nested deeper than 32 levels/);
    expect(producer.of('ack')[0]).toMatchObject({ frame: 3, accepted: [{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: 0 }] });
    expect(runtime.engine.counters.rejected.too_deep).toBe(2);
    expect(streamStatsOf(runtime).handlerErrors).toBe(0);
  });

  it('answers the same bodies on POST /v1/snapshots with a 400, and a deep stream command with an error frame', async () => {
    const { url } = await startService();
    for (const body of [deepArrays, deepObject(5000)]) {
      const { status, json } = await httpPost(url, '/v1/snapshots', body);
      expect(status).toBe(400);
      expect(json.message).toMatch(/^body: nested deeper than 32 levels/);
    }
    const subscriber = await Client.connect(`${url}/v1/stream`);
    expect(await subscriber.command(deepArrays)).toMatchObject({ type: 'error', reason: 'too_deep' });
    expect(await subscriber.command({ subscribe: ['AMZN'] })).toEqual({ type: 'subscriptions', symbols: ['AMZN'] });
  });

  it('survives any JSON value and any text as a frame, answering each (fuzzed)', async () => {
    const { url, runtime } = await startService();
    const producer = await Client.connect(`${url}/v1/ingest`);
    const frames = [
      ...fc.sample(fc.jsonValue({ maxDepth: 40 }), 150).map((value) => JSON.stringify(value)),
      ...fc.sample(fc.string({ unit: 'binary', maxLength: 200 }), 150),
      ...fc
        .sample(fc.object({ maxDepth: 6, key: fc.constantFrom('symbol', 'ts', 'seq', 'bids', 'asks', 'type', 'toString', '__proto__', 'constructor') }), 100)
        .map((value) => JSON.stringify(value)),
    ].filter((frame) => frame !== undefined && frame.length > 0);
    for (const frame of frames) producer.send(frame);
    producer.send(AMZN[0]);
    await producer.until(() => producer.of('ack').some((ack) => (ack.accepted as unknown[]).length === 1), 20_000);
    expect(streamStatsOf(runtime).handlerErrors).toBe(0);
    expect(runtime.scheduler.stats.failures).toBe(0);
    expect(producer.closed).toBeNull();
  });
});

describe('one producer never starves another', () => {
  it('refuses a frame or body with more messages than ingestMaxBatch, whole, before any of it runs', async () => {
    const { url, runtime } = await startService({ ingestMaxBatch: 50 });
    const producer = await Client.connect(`${url}/v1/ingest`);
    producer.send(AMZN.slice(0, 51));
    await producer.until(() => producer.of('ack').length === 1);
    expect(producer.of('error')).toEqual([{ type: 'error', frame: 1, reason: 'too_many', detail: '(root): at most 50 messages per frame or body, got 51' }]);
    const posted = await httpPost(url, '/v1/snapshots', JSON.stringify(AMZN.slice(0, 51)));
    expect(posted.status).toBe(400);
    expect(posted.json.rejected).toEqual([{ reason: 'too_many', detail: '(root): at most 50 messages per frame or body, got 51' }]);
    expect(runtime.engine.counters.accepted).toBe(0);
  });

  it('charges the rate limit per message when a frame arrives: one frame of more messages than the rate is refused', async () => {
    const { url, runtime } = await startService({ ingestRatePerSecond: 100 });
    const producer = await Client.connect(`${url}/v1/ingest`);
    const frame = Array.from({ length: 150 }, (_, i) => amznTick(i));
    producer.send(frame);
    await producer.until(() => producer.of('error').length === 1);
    expect(producer.of('error')[0]).toMatchObject({ reason: 'rate_limited', detail: expect.stringContaining('150 messages') });
    expect(runtime.engine.counters.accepted).toBe(0);
    expect(runtime.engine.counters.rejected.rate_limited).toBe(1);
  });

  it("serves a polite producer, /healthz and the stream while a flooder's big frames are still being worked through", async () => {
    // The default models make each snapshot cost real work: 1,000 of them take many slices.
    const { url } = await startService({ models: 'rtrl,tbptt:10,logistic,majority', ingestRatePerSecond: 100_000 });
    const flooder = await Client.connect(`${url}/v1/ingest`);
    const polite = await Client.connect(`${url}/v1/ingest`);
    const subscriber = await Client.connect(`${url}/v1/stream`);
    await subscriber.command({ subscribe: ['POLITE'] });
    const events: string[] = [];
    flooder.socket.on('message', () => events.push('flooder answered'));
    const big = (from: number): CanonicalRow[] => Array.from({ length: 1000 }, (_, i) => amznTick(from + i));
    flooder.send(big(0));
    flooder.send(big(1000));
    // Give the flooder's frames a head start into the scheduler, then ask for service.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const health = fetch(url.replace(/^ws/, 'http') + '/healthz').then((response) => {
      events.push(`healthz ${response.status}`);
    });
    polite.send({ ...AMZN[0], symbol: 'POLITE' });
    await polite.until(() => polite.of('ack').length === 1, 30_000);
    events.push('polite acked');
    await subscriber.until(() => subscriber.of('prediction').length === 1, 30_000);
    events.push('stream delivered');
    await health;
    expect(events.slice(0, 3).sort()).toEqual(['healthz 200', 'polite acked', 'stream delivered']);
    await flooder.until(() => flooder.of('ack').length === 2, 60_000);
    expect(events.indexOf('flooder answered')).toBeGreaterThan(2);
  }, 90_000);

  it('refuses ingest and stream upgrades over their connection caps with 503; a freed slot is usable again', async () => {
    const { url, runtime } = await startService({ maxIngestConnections: 2, maxStreamConnections: 1 });
    const first = await Client.connect(`${url}/v1/ingest`);
    await Client.connect(`${url}/v1/ingest`);
    await expect(Client.connect(`${url}/v1/ingest`)).rejects.toThrow('HTTP 503');
    await Client.connect(`${url}/v1/stream`);
    await expect(Client.connect(`${url}/v1/stream`)).rejects.toThrow('HTTP 503');
    expect(streamStatsOf(runtime).connectionsRefused).toBe(2);
    first.socket.close();
    await first.until(() => first.closed !== null);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await Client.connect(`${url}/v1/ingest`);
    again.send(AMZN[0]);
    await again.until(() => again.of('ack').length === 1);
  });
});

describe('timestamps, sequence numbers and symbols', () => {
  it('rejects ts 1e308 and a ts far ahead of the receive clock instead of letting them block the symbol', async () => {
    const { url, runtime } = await startService({ clockSkewSeconds: 60 });
    const producer = await Client.connect(`${url}/v1/ingest`);
    producer.send({ ...AMZN[0], ts: 1e308 });
    producer.send({ ...AMZN[0], ts: Date.now() + 600_000 });
    producer.send(AMZN[0]);
    producer.send(AMZN[1]);
    await producer.until(() => producer.of('ack').length === 4);
    expect(producer.of('error').map((e) => e.reason)).toEqual(['schema', 'implausible_ts']);
    expect(producer.of('error')[0].detail).toMatch(/^ts: must be epoch milliseconds between 1970 and 2200/);
    expect(producer.of('error')[1].detail).toMatch(/AMZN: ts: \d+ is \d+ ms ahead of the receive clock \(at most 60000 ms allowed\)/);
    expect(runtime.engine.symbol('push:AMZN')?.ticks).toBe(2);
  });

  it('lets the operator reset a symbol poisoned by a huge seq, and the reset survives a restart', async () => {
    const { url, runtime } = await startService();
    const http = url.replace(/^ws/, 'http');
    expect((await httpPost(url, '/v1/snapshots', JSON.stringify({ ...AMZN[0], seq: 2 ** 53 - 1 }))).status).toBe(200);
    const blocked = await httpPost(url, '/v1/snapshots', JSON.stringify(AMZN[1]));
    expect(blocked.json.rejected).toEqual([{ reason: 'out_of_order', detail: expect.stringContaining(`seq: 1 is not after the last accepted seq ${2 ** 53 - 1}`) }]);

    const reset = await fetch(`${http}/v1/symbols/AMZN/ordering/reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    const resetBody = (await reset.json()) as { stream: string; venue: string; symbol: string; checkpoint: { reason: string } };
    expect([resetBody.stream, resetBody.venue, resetBody.symbol]).toEqual(['push:AMZN', 'push', 'AMZN']);
    expect(resetBody.checkpoint.reason).toBe('ordering-reset');
    expect((await httpPost(url, '/v1/snapshots', JSON.stringify(AMZN[1]))).json.accepted).toEqual([{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: 1 }]);

    // A restart on the same database resumes the reset ordering, not the poisoned one.
    await runtime.stop();
    const restarted = new ServiceRuntime(runtime.config, { info() {}, warn() {}, error() {}, debug() {} });
    await restarted.start();
    await restarted.whenRestored();
    expect(restarted.ingest(AMZN[2]).accepted).toEqual([{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: 2 }]);
    expect(restarted.ingest(AMZN[2]).rejected[0].reason).toBe('out_of_order');
    await restarted.stop();
  });

  it('accepts only well-formed symbols, naming the field: a lone surrogate, a space, a control character, 65 characters', async () => {
    const { url, runtime } = await startService();
    const producer = await Client.connect(`${url}/v1/ingest`);
    const bad = ['\ud800', 'AM ZN', 'AMZN\u0000', 'X'.repeat(65), '', '-AMZN', 'AMZÑ'];
    for (const symbol of bad) producer.send({ ...AMZN[0], symbol });
    const good = ['BTC-USD', 'XBT/USD', 'ES.FUT', 'BRK.A', 'btcusdt', 'EUR=X'];
    good.forEach((symbol) => producer.send({ ...AMZN[0], symbol }));
    await producer.until(() => producer.of('ack').length === bad.length + good.length);
    const errors = producer.of('error');
    expect(errors).toHaveLength(bad.length);
    for (const error of errors) expect(error).toMatchObject({ reason: 'schema', detail: expect.stringMatching(/^symbol: must be 1 to 64 characters of A-Z a-z 0-9/) });
    expect([...runtime.engine.symbols.keys()].sort()).toEqual(good.map((symbol) => `push:${symbol}`).sort());
    const subscriber = await Client.connect(`${url}/v1/stream`);
    expect(await subscriber.command({ subscribe: ['\ud800'] })).toMatchObject({ type: 'error', reason: 'schema' });
  });
});
