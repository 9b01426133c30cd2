// The fastify application factory: the service's infrastructure plugins (src/service/plugins/:
// config, store, engine, predictions, checkpointing, feeds), then the route plugins, each
// declaring the plugins it uses. The server entry (src/cli/serve.ts) owns the logger, listen,
// the signals and the exit code; closing the app stops the service in the order of its plugin
// graph. Tests build the app over a runtime of their own, or from a configuration, and use
// `app.inject` or a real socket on 127.0.0.1:0.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { STATUS_CODES } from 'node:http';
import { parseJsonBounded } from '../domain/json-edge.js';
import { packageVersion } from '../domain/package-root.js';
import { storeFailureKind } from '../store/database.js';
import type { ServiceConfig } from '../service/config.js';
import { registerService, type ServiceSource } from '../service/plugins/index.js';
import type { OwnedService } from '../service/plugins/source.js';
import { ConflictError, NotFoundError, StoreWriteError, type RuntimeLogger, type ServiceRuntime } from '../service/runtime.js';
import { checkpointRoutes, ingestRoutes, restRoutes } from './rest.js';
import { webSocketRoutes } from './ws.js';
import { metricsRoute } from './metrics.js';
import { dashboardRoutes } from './dashboard.js';
import { registerAsyncApiRoute } from './asyncapi.js';

export { requireToken } from './auth.js';

interface LoggerOption {
  /** A pino logger (or `false` for none): every request's lines carry its request id. */
  readonly logger?: FastifyBaseLogger | false;
}

/** The app serves a runtime its caller built, starts and stops. */
export interface LentRuntimeOptions extends LoggerOption {
  readonly runtime: ServiceRuntime;
}

/** The app builds its service from `config`, starts it when ready and stops it when closed. */
export interface OwnedServiceOptions extends LoggerOption {
  readonly config: ServiceConfig;
  /** The service's own log (serve passes a child of its logger). */
  readonly serviceLogger: RuntimeLogger;
  /** Wall clock for live data and checkpoint times (Date.now by default). */
  readonly now?: () => number;
  /** The demo feed to connect when no feed is configured (serve's: the bundled recording on a loopback stand-in). */
  readonly demoFeed?: OwnedService['demoFeed'];
}

export type AppOptions = LentRuntimeOptions | OwnedServiceOptions;

/**
 * A fastify app as every HTTP role serves it, before its plugins: the logger and request ids,
 * the body limit, zod validation, the one error handler, bounded JSON bodies and the OpenAPI
 * document. The embedded service (buildApp) and the api role (src/bus/api-role.ts) add theirs.
 */
export async function createHttpApp(config: Pick<ServiceConfig, 'bodyLimitBytes'>, logger: FastifyBaseLogger | false | undefined): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger || undefined,
    logger: logger === undefined ? false : undefined,
    bodyLimit: config.bodyLimitBytes,
    genReqId: (() => {
      let next = 0;
      return () => `req-${(++next).toString(36)}`;
    })(),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // One error handler: validation issues name the field; no stack trace ever reaches a client.
  app.setErrorHandler((error, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      return reply.code(400).send({
        error: 'Bad Request',
        message: `invalid ${error.validationContext ?? 'request'}`,
        issues: error.validation.flatMap((issue) => namedIssues(issue.instancePath.replace(/^\//, '').split('/').filter(Boolean), issue.keyword, issue.message, issue.params)),
      });
    }
    if (error instanceof NotFoundError) return reply.code(404).send({ error: 'Not Found', message: error.message });
    if (error instanceof ConflictError) return reply.code(409).send({ error: 'Conflict', message: error.message });
    if (error instanceof StoreWriteError) {
      request.log.error({ err: error }, 'store write failed');
      return reply.code(503).send({ error: 'Service Unavailable', message: error.message, store: error.kind });
    }
    const storeKind = storeFailureKind(error);
    if (storeKind !== 'other') {
      request.log.error({ err: error }, 'store failed');
      return reply.code(503).send({ error: 'Service Unavailable', message: `database ${storeKind}: ${(error as Error).message}`, store: storeKind });
    }
    const failure = error as { statusCode?: number; name?: string; message?: string };
    const status = failure.statusCode && failure.statusCode >= 400 && failure.statusCode < 600 ? failure.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(status).send({ error: STATUS_CODES[status] ?? 'Error', message: status >= 500 ? 'internal error' : failure.message });
  });
  // Bodies are parsed with their nesting bounded: a deeply nested body is a 400 naming the
  // problem, never a stack overflow in whatever walks it next.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const parsed = parseJsonBounded(body as string, 'body');
    if (parsed.ok) done(null, parsed.value);
    else done(Object.assign(new Error(parsed.detail), { statusCode: 400 }), undefined);
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}` }));

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'lob-rtrl', description: 'Limit-order-book signals from an online RNN trained by exact RTRL', version: packageVersion() },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  return app;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const source: ServiceSource =
    'runtime' in options ? { runtime: options.runtime } : { config: options.config, logger: options.serviceLogger, now: options.now, demoFeed: options.demoFeed };
  const app = await createHttpApp('runtime' in options ? options.runtime.config : options.config, options.logger);
  await registerService(app, source);
  await app.register(restRoutes);
  await app.register(ingestRoutes);
  await app.register(checkpointRoutes);
  await app.register(webSocketRoutes);
  await app.register(metricsRoute);
  await app.register(dashboardRoutes);
  await registerAsyncApiRoute(app);
  return app;
}

interface ZodIssueLike {
  readonly code?: string;
  readonly path?: readonly PropertyKey[];
  readonly message?: string;
  readonly errors?: readonly (readonly ZodIssueLike[])[];
}

/**
 * A failed union (POST /v1/snapshots takes one snapshot or an array) reports only "Invalid
 * input" at its root; the branch whose issues reach deepest is the shape the client meant,
 * so its issues name the field instead.
 */
function namedIssues(path: readonly PropertyKey[], code: string | undefined, message: string | undefined, params: unknown): Array<{ path: string; message: string }> {
  const branches = code === 'invalid_union' ? ((params as ZodIssueLike | undefined)?.errors ?? []) : [];
  const depth = (branch: readonly ZodIssueLike[]) => Math.max(0, ...branch.map((issue) => issue.path?.length ?? 0));
  const meant = branches.filter((branch) => branch.length > 0).sort((a, b) => depth(b) - depth(a))[0];
  if (meant && depth(meant) > 0) {
    return meant.flatMap((issue) => namedIssues([...path, ...(issue.path ?? [])], issue.code, issue.message, issue));
  }
  return [{ path: path.map(String).join('.') || '(root)', message: message ?? 'invalid' }];
}
