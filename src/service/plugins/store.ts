// The SQLite store: the database and its checkpoint repository. Everything else depends on it,
// so it closes last, after the final checkpoints are in.
import fp from 'fastify-plugin';
import type { EngineCheckpoints } from '../../store/engine-checkpoints.js';
import { openStore } from '../runtime.js';
import { isLent, type ServiceSource } from './source.js';

declare module 'fastify' {
  interface FastifyInstance {
    store: EngineCheckpoints;
  }
}

export const storePlugin = fp<ServiceSource>(
  async (app, source) => {
    if (isLent(source)) {
      app.decorate('store', source.runtime.checkpoints);
      return;
    }
    const store = openStore(app.serviceConfig);
    app.decorate('store', store);
    app.addHook('onClose', async () => store.close());
  },
  { name: 'store', dependencies: ['config'] },
);
