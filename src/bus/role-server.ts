// The small HTTP face of a distributed role (ingest, worker): /healthz with what the role
// reports about itself, and /metrics in the Prometheus text format, led by the build info.
import Fastify, { type FastifyInstance } from 'fastify';
import { packageVersion } from '../domain/package-root.js';

export interface RoleServer {
  readonly address: string;
  close(): Promise<void>;
}

export async function startRoleServer(options: {
  role: string;
  host: string;
  port: number;
  health: () => object;
  metrics: () => readonly string[];
  /** Routes of the role's own beside /healthz and /metrics (the ingest role's push ingest). */
  routes?: (app: FastifyInstance) => Promise<void>;
  /** Largest request body accepted, bytes (fastify's default without). */
  bodyLimit?: number;
}): Promise<RoleServer> {
  const app = Fastify({ logger: false, ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }) });
  await options.routes?.(app);
  app.get('/healthz', async () => ({ ok: true, role: options.role, ...options.health() }));
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', 'text/plain; version=0.0.4');
    const lines = [
      '# HELP lob_rtrl_build_info The running lob-rtrl version.',
      '# TYPE lob_rtrl_build_info gauge',
      `lob_rtrl_build_info{version="${packageVersion()}",role="${options.role}"} 1`,
      ...options.metrics(),
    ];
    return `${lines.join('\n')}\n`;
  });
  const address = await app.listen({ host: options.host, port: options.port });
  return { address, close: () => app.close() };
}
