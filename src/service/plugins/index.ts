// The service's infrastructure, registered in an order its dependencies allow. Fastify runs
// `onClose` hooks last-registered first, so every plugin closes before what it depends on:
// feeds → checkpointing (final checkpoints) → predictions → engine (worker threads) → store.
import type { FastifyInstance } from 'fastify';
import { checkpointingPlugin } from './checkpointing.js';
import { configPlugin } from './config.js';
import { enginePlugin } from './engine.js';
import { feedsPlugin } from './feeds.js';
import { predictionsPlugin } from './predictions.js';
import type { ServiceSource } from './source.js';
import { storePlugin } from './store.js';

export type { ServiceSource } from './source.js';

/** Every infrastructure plugin, each after the ones it depends on. */
export const servicePlugins = [configPlugin, storePlugin, enginePlugin, predictionsPlugin, checkpointingPlugin, feedsPlugin] as const;

export async function registerService(app: FastifyInstance, source: ServiceSource): Promise<void> {
  for (const plugin of servicePlugins) await app.register(plugin, source);
}
