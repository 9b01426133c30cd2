// `lob-rtrl serve` (and `npm start`): the server entry. It owns the logger, the listening
// socket, the wall clock, the signals and the exit code; everything else is the app, whose
// plugins start the service when it is ready and stop it, in dependency order, when it closes.
import type { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { BusError } from '../bus/market-log.js';
import { startIngestRole } from '../bus/ingest-role.js';
import { startWorkerRole } from '../bus/worker-role.js';
import { startApiRole } from '../bus/api-role.js';
import { defaultWorkerCount } from '../engine/worker-pool.js';
import { buildApp } from '../http/app.js';
import { startDemoFeed } from './demo-feed.js';
import { resolveRtrlKernelOrExplain } from './kernel-choice.js';
import { ConfigError, engineConfigOf, loadServiceConfig, type ServiceConfig } from '../service/config.js';
import { ShutdownCheckpointError } from '../service/runtime.js';
import { UsageError } from './options.js';

interface ServeFlags {
  config?: string;
  host?: string;
  port?: string;
  db?: string;
  logLevel?: string;
  levels?: string;
  target?: string;
  models?: string;
  hidden?: string;
  lr?: string;
  seed?: string;
  kernel?: string;
  workers?: string;
  role?: string;
  natsUrl?: string;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the service: live feeds (or the built-in demo feed), REST + WebSocket predictions, SQLite checkpoints')
    .option('--config <file>', 'JSON configuration file (keys as in the README)')
    .option('--host <host>', 'address to listen on (LOB_RTRL_HOST)')
    .option('--port <port>', 'port to listen on, 0 = any (LOB_RTRL_PORT)')
    .option('--db <file>', 'SQLite database file (LOB_RTRL_DB)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (LOB_RTRL_LOG_LEVEL)')
    .option('--levels <n>', 'book levels per side for features (LOB_RTRL_LEVELS)')
    .option('--target <target>', 'next-move | horizon:K[:THETA] (ticks) | horizon:1s, horizon:500ms[:THETA] (venue time) (LOB_RTRL_TARGET)')
    .option('--models <list>', 'rtrl,tbptt:K,logistic,majority (LOB_RTRL_MODELS)')
    .option('--hidden <n>', 'hidden units (LOB_RTRL_HIDDEN)')
    .option('--lr <rate>', 'learning rate (LOB_RTRL_LR)')
    .option('--seed <n>', 'initialisation seed (LOB_RTRL_SEED)')
    .option('--kernel <kernel>', 'RTRL kernel: auto|js|native (LOB_RTRL_KERNEL)')
    .option('--workers <n>', 'worker threads the symbols are spread over (LOB_RTRL_WORKERS; default one per core; 0 or 1: all on the main thread)')
    .option(
      '--role <role>',
      'all (the embedded single process) | ingest (feeds and push ingest to the NATS market-data log) | worker (consume its partitions) | api (REST, WebSocket stream, dashboard and metrics from the prediction stream; LOB_RTRL_ROLE)',
    )
    .option('--nats-url <url>', 'NATS servers for the distributed roles (LOB_RTRL_NATS_URL)')
    .action(async (flags: ServeFlags) => {
      let config: ServiceConfig;
      const warnings: string[] = [];
      try {
        const { config: file, ...rest } = flags;
        config = loadServiceConfig({ defaults: serveDefaults(), env: process.env, file, flags: rest, warnings });
      } catch (error) {
        if (error instanceof ConfigError) throw new UsageError(`config: ${error.message}`);
        throw error;
      }
      await serve(config, warnings);
    });
}

/** What `serve` takes from the machine when no file, variable or flag says otherwise: a worker thread per core. */
export function serveDefaults(): Partial<ServiceConfig> {
  return { workers: defaultWorkerCount() };
}

export function createLogger(config: Pick<ServiceConfig, 'logLevel'>): Logger {
  return process.stdout.isTTY
    ? pino({ level: config.logLevel, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } })
    : pino({ level: config.logLevel });
}

export async function serve(config: ServiceConfig, configWarnings: readonly string[] = []): Promise<void> {
  const logger = createLogger(config);
  for (const warning of configWarnings) logger.warn(`config: ${warning}`);
  const kernel = resolveRtrlKernelOrExplain(config.kernel);
  kernel.native?.setThreads(config.kernelThreads);
  if (kernel.fallbackReason === undefined) logger.info({ kernel: kernel.name }, `RTRL kernel: ${kernel.name}`);
  else logger.warn({ kernel: kernel.name, reason: kernel.fallbackReason }, `RTRL kernel: ${kernel.name} (the native kernel is not available)`);
  if (config.role !== 'all') {
    await serveBusRole(config, config.role, logger);
    return;
  }
  // With no feed configured the entry point chooses the demo: the bundled recording on a loopback stand-in.
  const app = await buildApp({ config, logger, serviceLogger: logger.child({ component: 'runtime' }), now: Date.now, demoFeed: startDemoFeed });
  // The feeds connect and the stored symbols queue for the background restore when the app is
  // ready, just before it listens: /healthz answers at once and /readyz says when the stored
  // symbols (restored in the background, or on first use) and the feeds are ready.
  const address = await app.listen({ host: config.host, port: config.port });
  logger.info({ address, db: config.db, storedSymbols: app.streams.restoring }, 'lob-rtrl serving');
  logger.info(`open ${address}/docs (API), ${address}/v1/symbols, ${address}/v1/symbols/BTCUSDT/prediction; stream: ws ${address.replace(/^http/, 'ws')}/v1/stream`);

  // Connections first, then each plugin's onClose: feeds, final checkpoints, engine, store.
  stopOnSignals(logger, 'shutting down: closing connections, stopping feeds, writing checkpoints', () => app.close());
}

/**
 * SIGINT or SIGTERM runs `close` once: exit 0 when it finished, 1 (with the reason logged as
 * fatal) when it threw, so a lost checkpoint is never reported as a clean stop.
 */
function stopOnSignals(logger: Logger, announcement: string, close: () => Promise<void>): void {
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, announcement);
    try {
      await close();
      logger.info('stopped cleanly');
      logger.flush?.();
      process.exit(0);
    } catch (error) {
      if (error instanceof ShutdownCheckpointError) logger.fatal({ lost: error.lost }, `shutdown failed: ${error.message}`);
      else logger.fatal({ err: error }, 'shutdown failed');
      logger.flush?.();
      process.exit(1);
    }
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

/** `--role ingest|worker|api`: a part of the NATS deployment (docs/scale.md), not the embedded service. */
async function serveBusRole(config: ServiceConfig, roleName: 'ingest' | 'worker' | 'api', logger: Logger): Promise<void> {
  if (config.natsUrl === undefined) throw new UsageError(`config: role ${roleName} needs natsUrl (LOB_RTRL_NATS_URL)`);
  let role;
  try {
    role =
      roleName === 'api'
        ? await startApiRole({ config, logger })
        : roleName === 'worker'
          ? await startWorkerRole({ bus: config, engine: engineConfigOf(config), host: config.host, port: config.port, logger })
          : await startIngestRole({
              bus: config,
              feeds: config.feeds,
              levels: config.levels,
              host: config.host,
              port: config.port,
              logger,
              push: {
                maxBatch: config.ingestMaxBatch,
                token: config.token,
                maxClockSkewMs: config.clockSkewSeconds * 1000,
                bodyLimit: config.bodyLimitBytes,
                maxConnections: config.maxIngestConnections,
              },
            });
  } catch (error) {
    if (error instanceof BusError) throw new UsageError(error.message);
    throw error;
  }
  logger.info(
    { address: role.address, role: roleName },
    roleName === 'api' ? `lob-rtrl api serving REST, /v1/stream, the dashboard and /metrics from the prediction stream` : `lob-rtrl ${roleName} serving /healthz and /metrics`,
  );
  const announcement = {
    worker: 'worker shutting down: checkpointing and releasing its partitions',
    ingest: 'ingest shutting down: closing the feeds',
    api: 'api shutting down: closing connections',
  }[roleName];
  stopOnSignals(logger, announcement, () => role.close());
}
