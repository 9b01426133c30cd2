// The typed API: every route in the OpenAPI document declares its response bodies, and the
// AsyncAPI reference of the WebSocket messages matches what the service actually sends (each
// real frame parses with its documented schema and loses nothing in the parse).
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { ingestAck, predictionResponse, streamPrediction, streamSubscriptions, symbolMetricsResponse, symbolsResponse, wsError } from '../../src/http/api-schemas.js';
import { AMZN, Client, startService } from './ws-harness.js';

interface OpenApiDocument {
  paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: { type?: string; properties?: object; anyOf?: unknown[] } }> }> }>>;
}

/** `value` is exactly what `schema` documents: parsing drops no key and changes no value. */
function expectDocumented(schema: z.ZodType, value: unknown): void {
  const parsed = schema.safeParse(value);
  expect(parsed.success, JSON.stringify(parsed.error?.issues ?? [])).toBe(true);
  expect(parsed.data).toEqual(value);
}

describe('the OpenAPI document at /docs/json', () => {
  it('declares a JSON response body for every route and method, errors included', async () => {
    const { app } = await startService();
    const document = (await app.inject({ url: '/docs/json' })).json() as OpenApiDocument;
    const routes = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })));
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining([
        'get /healthz',
        'get /readyz',
        'get /v1/symbols',
        'get /v1/symbols/{symbol}/prediction',
        'get /v1/symbols/{symbol}/predictions',
        'get /v1/symbols/{symbol}/metrics',
        'post /v1/snapshots',
        'get /v1/status',
        'get /v1/asyncapi.json',
      ]),
    );
    for (const { path, method, operation } of routes) {
      if (path === '/metrics' || path === '/v1/asyncapi.json' || path.startsWith('/docs')) continue; // text exposition; a document; the UI
      if (path === '/v1/ingest' || path === '/v1/stream') continue; // WebSocket upgrades: documented in AsyncAPI
      const responses = operation.responses ?? {};
      const success = Object.entries(responses).filter(([code]) => code.startsWith('2'));
      expect(success.length, `${method} ${path} has no 2xx response`).toBeGreaterThan(0);
      for (const [code, response] of Object.entries(responses)) {
        const schema = response.content?.['application/json']?.schema;
        expect(schema?.properties ?? schema?.anyOf, `${method} ${path} ${code}: no body schema`).toBeDefined();
      }
    }
  });

  it('answers match their declared schemas key for key', async () => {
    const { app, runtime } = await startService();
    runtime.ingest(AMZN.slice(0, 50));
    expectDocumented(symbolsResponse, (await app.inject({ url: '/v1/symbols' })).json());
    expectDocumented(predictionResponse, (await app.inject({ url: '/v1/symbols/AMZN/prediction' })).json());
    expectDocumented(symbolMetricsResponse, (await app.inject({ url: '/v1/symbols/AMZN/metrics' })).json());
  });
});

describe('the AsyncAPI reference at /v1/asyncapi.json', () => {
  it('documents both channels with a payload schema for every message', async () => {
    const { app } = await startService();
    const document = (await app.inject({ url: '/v1/asyncapi.json' })).json() as {
      asyncapi: string;
      channels: Record<string, { address: string; messages: Record<string, { payload: { type?: string; anyOf?: unknown[] } }> }>;
    };
    expect(document.asyncapi).toBe('3.0.0');
    expect(
      Object.values(document.channels)
        .map((c) => c.address)
        .sort(),
    ).toEqual(['/v1/ingest', '/v1/stream']);
    expect(Object.keys(document.channels.stream.messages).sort()).toEqual(['command', 'error', 'prediction', 'subscriptions']);
    expect(Object.keys(document.channels.ingest.messages).sort()).toEqual(['ack', 'error', 'frame']);
    for (const channel of Object.values(document.channels)) {
      for (const [name, message] of Object.entries(channel.messages)) expect(message.payload.type ?? message.payload.anyOf, `${channel.address} ${name}`).toBeDefined();
    }
  });

  it('every frame the service sends is a documented message', async () => {
    const { url } = await startService();
    const subscriber = await Client.connect(`${url}/v1/stream`);
    expectDocumented(streamSubscriptions, await subscriber.command({ subscribe: ['AMZN'] }));
    expectDocumented(wsError, await subscriber.command({ subscribe: 'AMZN' }));

    const producer = await Client.connect(`${url}/v1/ingest`);
    producer.send(AMZN.slice(0, 20));
    producer.send([{ ...AMZN[20], bids: [[1e9, 1]] }]);
    await producer.until(() => producer.of('ack').length === 2);
    for (const ack of producer.of('ack')) expectDocumented(ingestAck, ack);
    expect(producer.of('error')).toHaveLength(1);
    expectDocumented(wsError, producer.of('error')[0]);

    await subscriber.until(() => subscriber.of('prediction').length > 0);
    for (const prediction of subscriber.of('prediction')) expectDocumented(streamPrediction, prediction);
  });
});
