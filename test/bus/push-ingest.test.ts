// Push ingest on the ingest role, against a real nats-server: pushed books land in the
// market-data log under the producer's venue, in order, once each (a body sent again after a
// restart is stored once); bad input is refused naming the field and never published.
import { DeliverPolicy } from '@nats-io/jetstream';
import pino from 'pino';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { decodeLogged } from '../../src/bus/codec.js';
import { busConfig, type BusConfig } from '../../src/bus/config.js';
import { startIngestRole, type IngestRole } from '../../src/bus/ingest-role.js';
import { connectBus, type BusConnection } from '../../src/bus/market-log.js';
import { partitionOf } from '../../src/bus/subjects.js';
import { startNatsServer, type NatsServer } from '../../bench/nats-server.js';

const lines = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as { symbol: string; ts: number; seq: number });
const token = 'a-test-token-of-32-characters-xx';
const silent = pino({ level: 'silent' });

let nats: NatsServer;
let bus: BusConnection;
let config: BusConfig;

beforeAll(async () => {
  nats = await startNatsServer();
  config = busConfig({ natsUrl: `nats://127.0.0.1:${nats.port}`, natsPrefix: 'push' });
  bus = await connectBus(config, { name: 'test' });
}, 120_000);

afterAll(async () => {
  await bus?.close();
  await nats?.dispose();
});

function ingestRole(): Promise<IngestRole> {
  return startIngestRole({
    bus: config,
    feeds: [],
    levels: 5,
    host: '127.0.0.1',
    port: 0,
    logger: silent,
    push: { maxBatch: 100, token, maxClockSkewMs: Number.POSITIVE_INFINITY, bodyLimit: 1 << 20, maxConnections: 4 },
  });
}

function post(role: IngestRole, body: unknown, query = '', bearer = token) {
  return fetch(`${role.address}/v1/snapshots${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: JSON.stringify(body),
  }).then(async (response) => ({ status: response.status, json: (await response.json()) as Record<string, unknown> }));
}

/** Everything the log holds for one venue's symbol, decoded, oldest first. */
async function logged(venue: string, symbol: string): Promise<unknown[]> {
  const consumer = await bus.js.consumers.get(bus.names.marketStream, {
    filter_subjects: `push.md.${partitionOf(venue, symbol, config.natsPartitions)}.${venue}.${symbol}`,
    deliver_policy: DeliverPolicy.All,
  });
  const stored: unknown[] = [];
  const batch = await consumer.fetch({ max_messages: 1000, expires: 1000 });
  for await (const message of batch) stored.push(decodeLogged(message.string(), 5));
  return stored;
}

describe('push ingest on the ingest role', () => {
  it('publishes pushed books under the producer’s venue, in order, once each, and refuses bad input naming the field', async () => {
    const first = await ingestRole();
    try {
      const body = lines.slice(0, 20);
      const ok = await post(first, body, '?venue=okx');
      expect(ok.status).toBe(200);
      expect((ok.json.accepted as unknown[]).length).toBe(20);
      expect((ok.json.accepted as unknown[])[0]).toEqual({ stream: 'okx:AMZN', venue: 'okx', symbol: 'AMZN', seq: lines[0].seq });

      // The same body again in the same process: its seqs are not after the last accepted.
      const replayed = await post(first, body.slice(0, 1), '?venue=okx');
      expect(replayed.status).toBe(400);
      expect((replayed.json.rejected as Array<{ reason: string }>)[0].reason).toBe('out_of_order');
      // Another venue's stream of the same symbol has an ordering of its own.
      expect((await post(first, body.slice(0, 1))).json.accepted).toEqual([{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: lines[0].seq }]);

      const bad = await post(first, [{ ...lines[20], bids: [[1, -2]] }], '?venue=okx');
      expect(bad.status).toBe(400);
      expect((bad.json.rejected as Array<{ detail: string }>)[0].detail).toMatch(/0\.bids\.0\.1/);
      expect((await post(first, lines[20], '?venue=Not%20a%20venue')).status).toBe(400);
      expect((await post(first, lines[20], '?venue=okx', 'wrong-token-wrong-token-wrong-tok')).status).toBe(401);

      // WS /v1/ingest: one frame, one ack.
      const socket = new WebSocket(`${first.address.replace('http', 'ws')}/v1/ingest?venue=okx`, { headers: { authorization: `Bearer ${token}` } });
      await new Promise((resolve) => socket.once('open', resolve));
      const ack = new Promise<Record<string, unknown>>((resolve) => socket.once('message', (data) => resolve(JSON.parse(String(data)) as Record<string, unknown>)));
      socket.send(JSON.stringify(lines.slice(20, 25)));
      expect(await ack).toMatchObject({
        type: 'ack',
        frame: 1,
        accepted: lines.slice(20, 25).map((line) => ({ stream: 'okx:AMZN', venue: 'okx', symbol: 'AMZN', seq: line.seq })),
      });

      // A producer sending faster than the log stores is paused, not buffered: every frame is answered, in order.
      const acks: number[] = [];
      const allAcked = new Promise<void>((resolve) =>
        socket.on('message', (data) => {
          const reply = JSON.parse(String(data)) as { type: string; frame: number };
          if (reply.type === 'ack') acks.push(reply.frame);
          if (acks.length === 30) resolve();
        }),
      );
      for (let k = 0; k < 30; k++) socket.send(JSON.stringify({ ...lines[100 + k], symbol: 'FAST' }));
      await allAcked;
      expect(acks).toEqual(Array.from({ length: 30 }, (_, k) => k + 2));

      // Over the cap (4 here: this socket and three more), further connections and bodies get 503.
      const others = await Promise.all(
        [1, 2, 3].map(async () => {
          const other = new WebSocket(`${first.address.replace('http', 'ws')}/v1/ingest`, { headers: { authorization: `Bearer ${token}` } });
          await new Promise((resolve) => other.once('open', resolve));
          return other;
        }),
      );
      expect((await post(first, lines[200], '?venue=okx')).status).toBe(503);
      for (const other of others) other.close();
      socket.close();

      const metrics = await fetch(`${first.address}/metrics`).then((response) => response.text());
      expect(metrics).toContain('lob_rtrl_push_published_total 56');
      expect(metrics).toContain('lob_rtrl_push_refused_total 1');
      expect(metrics).toContain('lob_rtrl_push_rejected_total 2');
    } finally {
      await first.close();
    }

    // A restarted ingest has no ordering history: the producer re-sends, and the log keeps one copy.
    const second = await ingestRole();
    try {
      expect((await post(second, lines.slice(0, 25), '?venue=okx')).status).toBe(200);
    } finally {
      await second.close();
    }
    const stored = await logged('okx', 'AMZN');
    expect(stored).toHaveLength(25);
    expect(stored.map((entry) => (entry as { venue: string; message: { seq: number; localTs: number; ts: number } }).message.seq)).toEqual(
      lines.slice(0, 25).map((line) => line.seq),
    );
    // Its receive time is its own ts: what makes a re-sent message the same message.
    for (const entry of stored as Array<{ venue: string; message: { localTs: number; ts: number; symbol: string } }>) {
      expect(entry.venue).toBe('okx');
      expect(entry.message.symbol).toBe('AMZN');
      expect(entry.message.localTs).toBe(entry.message.ts);
    }
  });

  it('survives a NATS restart: a body JetStream could not store is answered 503 and is accepted when sent again, stored once', async () => {
    const role = await ingestRole();
    try {
      expect((await post(role, lines.slice(0, 10), '?venue=outage')).status).toBe(200);
      await nats.stop();
      // Past the publish timeout with NATS away: nothing of it counts as stored.
      const during = await post(role, lines.slice(10, 15), '?venue=outage');
      expect(during.status).toBe(503);
      expect(during.json.accepted).toEqual([]);
      expect(String(during.json.message)).toMatch(/did not store message 0 .*send it and the rest again/);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await nats.restart();
      // Its stream's order went back to before it: sent again, it is accepted, and the role goes on.
      let again = await post(role, lines.slice(10, 15), '?venue=outage');
      for (const deadline = Date.now() + 30_000; again.status === 503 && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        again = await post(role, lines.slice(10, 15), '?venue=outage');
      }
      expect(again.status).toBe(200);
      expect((again.json.accepted as unknown[]).length).toBe(5);
      expect((await post(role, lines.slice(15, 20), '?venue=outage')).status).toBe(200);
      const metrics = await fetch(`${role.address}/metrics`).then((response) => response.text());
      expect(metrics).toMatch(/^lob_rtrl_push_unavailable_total [1-9]\d*$/m);
    } finally {
      await role.close();
    }
    // Whatever the client had buffered during the outage and sent after it carries the same ids: one copy each, in order.
    const stored = (await logged('outage', 'AMZN')) as Array<{ message: { seq: number } }>;
    expect(stored.map((entry) => entry.message.seq)).toEqual(lines.slice(0, 20).map((line) => line.seq));
  }, 90_000);
});
