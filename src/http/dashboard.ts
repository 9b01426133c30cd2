// The live dashboard: one static page at `/` that draws the /v1/stream predictions with uPlot,
// plus `GET /v1/status` (feeds, engine step latency, symbols) which the page polls.
//
// Every asset is read once when the plugin registers and answered from memory: the page, its
// script and stylesheet (src/http/dashboard/) and uPlot's own build from node_modules, so the
// page works offline and nothing is ever fetched from another origin (the CSP says so too).
import { namedStream } from '../domain/stream.js';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../domain/package-root.js';
import { redactedError } from '../domain/redact.js';
import { registerService } from '../service/plugins/index.js';
import type { ServiceRuntime } from '../service/runtime.js';
import { statusResponse } from './api-schemas.js';

export interface DashboardAsset {
  readonly path: string;
  readonly contentType: string;
  readonly body: Buffer;
}

const HTML = 'text/html; charset=utf-8';
const JAVASCRIPT = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/**
 * Same-origin only: scripts, styles, fetches and the WebSocket (CSP3 `'self'` covers ws: on the
 * page's own host). uPlot styles its elements through the CSSOM, which style-src does not govern.
 */
export const DASHBOARD_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The page's own files live beside this module under src/; the build (tsc) emits only the .ts,
 * so from dist/ they are found through the package root instead.
 */
export function dashboardSourceDir(): string {
  const besideModule = join(dirname(fileURLToPath(import.meta.url)), 'dashboard');
  if (existsSync(join(besideModule, 'index.html'))) return besideModule;
  return join(packageRoot(), 'src/http/dashboard');
}

/** Reads every asset the page needs; throws naming the missing file. */
export function loadDashboardAssets(sourceDir: string = dashboardSourceDir()): DashboardAsset[] {
  const uplotDist = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
  const read = (file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new Error(`dashboard asset ${file} cannot be read: ${(error as Error).message}`);
    }
  };
  return [
    { path: '/', contentType: HTML, body: read(join(sourceDir, 'index.html')) },
    { path: '/dashboard/dashboard.js', contentType: JAVASCRIPT, body: read(join(sourceDir, 'dashboard.js')) },
    { path: '/dashboard/series.js', contentType: JAVASCRIPT, body: read(join(sourceDir, 'series.js')) },
    { path: '/dashboard/dashboard.css', contentType: CSS, body: read(join(sourceDir, 'dashboard.css')) },
    { path: '/dashboard/uplot.iife.min.js', contentType: JAVASCRIPT, body: read(join(uplotDist, 'uPlot.iife.min.js')) },
    { path: '/dashboard/uPlot.min.css', contentType: CSS, body: read(join(uplotDist, 'uPlot.min.css')) },
  ];
}

/** What `GET /v1/status` answers: the state a person watching the service wants at a glance. */
export function serviceStatus(service: Pick<FastifyInstance, 'streams' | 'feeds' | 'streamStats' | 'serviceConfig'>) {
  const latency = service.streams.stepLatency;
  const stream = service.streamStats;
  return {
    role: service.serviceConfig.role,
    feeds: service.feeds.list().map(({ venue, symbols, demo, stats }) => ({
      venue,
      symbols,
      demo,
      connected: stats.connected,
      reconnects: stats.reconnects,
      conflatedSnapshots: stats.conflatedSnapshots,
      droppedMessages: stats.droppedMessages,
      droppedTrades: stats.droppedTrades,
      resyncs: stats.resyncs,
      synced: stats.synced,
      lastError: stats.lastError,
    })),
    engine: {
      /** The RTRL kernel the learners run on: 'js', or 'native-' + instruction set. */
      kernel: service.streams.kernel,
      steps: latency.count,
      stepLatencyUs: { p50: latency.quantile(0.5), p99: latency.quantile(0.99), max: latency.count > 0 ? latency.maxUs : null },
    },
    stream: { subscribers: stream.subscribers, conflated: stream.conflated, dropped: stream.dropped },
    symbols: service.streams.list().map((s) => ({ ...namedStream(s.symbol), ticks: s.ticks, models: s.modelNames, target: s.targetName })),
  };
}

export interface DashboardOptions {
  /** Where the page's files are (the installed ones by default). */
  readonly sourceDir?: string;
}

/** Only the dashboard, over a runtime the caller starts and stops (tests). */
export async function registerDashboard(app: FastifyInstance, runtime: ServiceRuntime, sourceDir: string = dashboardSourceDir()): Promise<void> {
  await registerService(app, { runtime });
  await app.register(dashboardRoutes, { sourceDir });
}

async function registerDashboardRoutes(app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const sourceDir = options.sourceDir ?? dashboardSourceDir();
  let assets: DashboardAsset[];
  try {
    assets = loadDashboardAssets(sourceDir);
  } catch (error) {
    // A build that left the page out (an image copying dist/ only) still serves the API.
    const reason = (error as Error).message;
    app.serviceLog.error({ err: redactedError(error) }, 'dashboard disabled: its assets are missing from this installation');
    assets = [];
    app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.code(503).send({ error: 'Service Unavailable', message: `dashboard not installed: ${reason}` }));
  }
  for (const asset of assets) {
    app.get(asset.path, { schema: { hide: true } }, async (_request, reply) => {
      reply.header('content-type', asset.contentType).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff');
      if (asset.contentType === HTML) reply.header('content-security-policy', DASHBOARD_CSP);
      return reply.send(asset.body);
    });
  }

  app.get(
    '/v1/status',
    {
      schema: {
        summary: 'feed status (connected, reconnects, conflated snapshots, sync), engine step latency p50/p99 in µs, stream counters, symbols',
        response: { 200: statusResponse },
      },
    },
    async () => serviceStatus(app),
  );
}

/** The page at `/` and its assets, and `GET /v1/status`. */
export const dashboardRoutes = fp(registerDashboardRoutes, { name: 'dashboard-routes', dependencies: ['engine', 'feeds'], encapsulate: true });
