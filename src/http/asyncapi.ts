// GET /v1/asyncapi.json: the WebSocket messages of /v1/stream and /v1/ingest as an AsyncAPI 3.0
// document, generated from the same zod schemas the routes validate and send with, so the
// reference cannot drift from the wire.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { packageVersion } from '../domain/package-root.js';
import { ingestAck, ingestFrame, streamCommand, streamPrediction, streamSubscriptions, wsError } from './api-schemas.js';

function payload(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'draft-7', unrepresentable: 'any' }) as Record<string, unknown>;
}

export function asyncApiDocument() {
  const message = (name: string, title: string, schema: z.ZodType) => ({ name, title, summary: schema.description, contentType: 'application/json', payload: payload(schema) });
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'lob-rtrl WebSocket API',
      version: packageVersion(),
      description:
        'Predictions streamed per symbol (/v1/stream) and canonical market data pushed in (/v1/ingest). Text frames of JSON. ' +
        'A stream subscriber that falls behind has older predictions of a symbol replaced by newer ones, then is closed with 1013; ' +
        'an ingest producer over its rate gets an error frame per dropped frame; frames nested deeper than 32 levels are refused.',
    },
    channels: {
      stream: {
        address: '/v1/stream',
        messages: {
          command: message('command', 'Subscribe or unsubscribe', streamCommand),
          subscriptions: message('subscriptions', 'Subscriptions after a command', streamSubscriptions),
          prediction: message('prediction', 'A new prediction', streamPrediction),
          error: message('error', 'A refused command', wsError),
        },
      },
      ingest: {
        address: '/v1/ingest',
        description: 'Needs the bearer token when LOB_RTRL_TOKEN is set (Authorization header on the upgrade).',
        messages: {
          frame: message('frame', 'Canonical snapshots and trades', ingestFrame),
          ack: message('ack', 'The frame has run', ingestAck),
          error: message('error', 'A refused frame or message', wsError),
        },
      },
    },
    operations: {
      subscribe: { action: 'send', channel: { $ref: '#/channels/stream' }, messages: [{ $ref: '#/channels/stream/messages/command' }] },
      receivePredictions: {
        action: 'receive',
        channel: { $ref: '#/channels/stream' },
        messages: [{ $ref: '#/channels/stream/messages/subscriptions' }, { $ref: '#/channels/stream/messages/prediction' }, { $ref: '#/channels/stream/messages/error' }],
      },
      push: { action: 'send', channel: { $ref: '#/channels/ingest' }, messages: [{ $ref: '#/channels/ingest/messages/frame' }] },
      receiveAcks: {
        action: 'receive',
        channel: { $ref: '#/channels/ingest' },
        messages: [{ $ref: '#/channels/ingest/messages/ack' }, { $ref: '#/channels/ingest/messages/error' }],
      },
    },
  };
}

export async function registerAsyncApiRoute(app: FastifyInstance): Promise<void> {
  const document = asyncApiDocument();
  app.get('/v1/asyncapi.json', { schema: { summary: 'AsyncAPI 3.0 reference of the /v1/stream and /v1/ingest WebSocket messages' } }, async () => document);
}
