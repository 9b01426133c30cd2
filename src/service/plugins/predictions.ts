// The prediction bus: every new prediction to its subscribers (the stream), the recent ones of
// each symbol in memory, older ones in the store's prediction log. Subscriptions end with their
// connections, which the HTTP server closes before any plugin's onClose runs.
import fp from 'fastify-plugin';
import { predictionBusOf, type PredictionBus } from '../views.js';
import type { ServiceSource } from './source.js';

declare module 'fastify' {
  interface FastifyInstance {
    predictions: PredictionBus;
  }
}

export const predictionsPlugin = fp<ServiceSource>(
  async (app) => {
    app.decorate('predictions', predictionBusOf(app.serviceRuntime));
  },
  { name: 'predictions', dependencies: ['store', 'engine'] },
);
