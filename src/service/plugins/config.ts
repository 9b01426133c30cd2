// The service configuration, validated once (src/service/config.ts), as a decorator every
// other plugin and route reads its limits from.
import fp from 'fastify-plugin';
import type { ServiceConfig } from '../config.js';
import { isLent, type ServiceSource } from './source.js';

declare module 'fastify' {
  interface FastifyInstance {
    serviceConfig: ServiceConfig;
  }
}

export const configPlugin = fp<ServiceSource>(
  async (app, source) => {
    app.decorate('serviceConfig', isLent(source) ? source.runtime.config : source.config);
  },
  { name: 'config' },
);
