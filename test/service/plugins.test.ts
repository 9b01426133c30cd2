// The service as a graph of fastify plugins: an app built from its configuration stops in the
// order of that graph (the feeds, then the final checkpoints, then the engine, then the store),
// a final checkpoint that cannot be written fails the close, an app over a lent runtime leaves
// it to its owner, and every route plugin declares what it uses: without a dependency it does
// not register, and with only the plugins it declares it serves.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { dashboardRoutes } from '../../src/http/dashboard.js';
import { metricsRoute } from '../../src/http/metrics.js';
import { checkpointRoutes, ingestRoutes, restRoutes } from '../../src/http/rest.js';
import { webSocketRoutes } from '../../src/http/ws.js';
import { loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { servicePlugins } from '../../src/service/plugins/index.js';
import { openStore, ServiceRuntime, ShutdownCheckpointError } from '../../src/service/runtime.js';

const fixture = join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl');
const snapshots = readFileSync(fixture, 'utf8')
  .split('\n')
  .filter(Boolean)
  .slice(0, 60)
  .map((line) => JSON.parse(line) as object);

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
/** A feed that never connects: there is one to stop, and it delivers nothing. */
const unreachableFeed = { venue: 'binance', url: 'ws://127.0.0.1:9/', restUrl: 'http://127.0.0.1:9/', symbols: ['BTCUSDT'] };

function configWith(flags: Record<string, unknown>): ServiceConfig {
  const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-plugins-')), 'db.sqlite');
  return loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, models: 'logistic,majority', ...flags } });
}

const open: FastifyInstance[] = [];
const lent: ServiceRuntime[] = [];
afterEach(async () => {
  for (const app of open.splice(0)) await app.close().catch(() => {});
  for (const runtime of lent.splice(0)) await runtime.stop();
});

function lentRuntime(): ServiceRuntime {
  const runtime = new ServiceRuntime(configWith({}), quiet);
  lent.push(runtime);
  return runtime;
}

async function ownedApp(flags: Record<string, unknown>): Promise<{ app: FastifyInstance; config: ServiceConfig; accepted: number }> {
  const config = configWith(flags);
  const app = await buildApp({ config, serviceLogger: quiet, logger: false });
  open.push(app);
  await app.ready();
  const ingested = await app.inject({ method: 'POST', url: '/v1/snapshots', payload: snapshots });
  expect(ingested.statusCode).toBe(200);
  const accepted = (ingested.json() as { accepted: unknown[] }).accepted.length;
  expect(accepted).toBe(snapshots.length);
  return { app, config, accepted };
}

describe('an app built from its configuration', () => {
  it.each([1, 2])('stops feeds, then writes the final checkpoints, then stops the engine, then closes the store (workers: %i)', async (workers) => {
    const { app, config, accepted } = await ownedApp({ workers, feeds: [unreachableFeed] });
    const runtime = app.serviceRuntime;
    expect(runtime.feeds).toHaveLength(1);
    const events: string[] = [];
    const feed = runtime.feeds[0].feed;
    const closeFeed = feed.close.bind(feed);
    vi.spyOn(feed, 'close').mockImplementation(async () => {
      await closeFeed();
      events.push('feed closed');
    });
    const repository = app.store.repository;
    const save = repository.save.bind(repository);
    vi.spyOn(repository, 'save').mockImplementation((input) => {
      const meta = save(input);
      events.push(`checkpoint ${input.symbol} ${input.reason}`);
      return meta;
    });
    const closeWorkers = runtime.closeWorkers.bind(runtime);
    vi.spyOn(runtime, 'closeWorkers').mockImplementation(async () => {
      await closeWorkers();
      events.push('engine closed');
    });
    const store = app.store;
    const closeStore = store.close.bind(store);
    vi.spyOn(store, 'close').mockImplementation(() => {
      closeStore();
      events.push('store closed');
    });

    await app.close();
    expect(events).toEqual(['feed closed', 'checkpoint push:AMZN shutdown', 'engine closed', 'store closed']);

    const reopened = openStore(config);
    try {
      const [newest] = reopened.repository.list('push:AMZN');
      expect(newest).toMatchObject({ venue: 'push', symbol: 'AMZN', reason: 'shutdown', tickCount: accepted });
    } finally {
      reopened.close();
    }
  });

  it('fails app.close() with ShutdownCheckpointError when the final checkpoint cannot be written, and still closes the store', async () => {
    // 64 KiB holds the schema but not one checkpoint of an RTRL learner with 16 units (its
    // sensitivities alone are 16 × 1,088 doubles, 139 kB): every write fails as on a full disk.
    const { app, accepted } = await ownedApp({ dbMaxBytes: 64 * 1024, models: 'rtrl', hidden: 16 });
    const store = app.store;
    const closeStore = store.close.bind(store);
    let storeClosed = false;
    vi.spyOn(store, 'close').mockImplementation(() => {
      closeStore();
      storeClosed = true;
    });

    const failure = await app.close().then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ShutdownCheckpointError);
    expect((failure as ShutdownCheckpointError).lost).toEqual([{ symbol: 'push:AMZN', ticksSinceCheckpoint: accepted, error: expect.stringMatching(/database or disk is full/) }]);
    expect(storeClosed).toBe(true);
  });

  it('starts nothing and stops nothing of a runtime lent to it: its owner does both', async () => {
    const config = configWith({ feeds: [unreachableFeed] });
    const runtime = new ServiceRuntime(config, quiet);
    const app = await buildApp({ runtime, logger: false });
    await app.ready();
    expect(runtime.feeds).toHaveLength(0);
    expect((await app.inject({ method: 'POST', url: '/v1/snapshots', payload: snapshots })).statusCode).toBe(200);
    await app.close();
    // Still open: the owner's stop writes the final checkpoint and closes the store.
    expect(runtime.checkpoints.repository.list('push:AMZN')).toEqual([]);
    await runtime.stop();
    const reopened = openStore(config);
    try {
      expect(reopened.repository.list('push:AMZN')[0]).toMatchObject({ reason: 'shutdown', tickCount: snapshots.length });
    } finally {
      reopened.close();
    }
  });
});

interface PluginMeta {
  readonly name: string;
  readonly dependencies?: readonly string[];
}
const metaOf = (plugin: object): PluginMeta => (plugin as Record<symbol, PluginMeta>)[Symbol.for('plugin-meta')];

/** A bare app as buildApp prepares one (zod compilers), the routes' own plugins left out. */
function bareApp(): FastifyInstance {
  const app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  open.push(app);
  return app;
}

/** The infrastructure plugins `names` need, with everything they need in turn, in registration order. */
function closureOf(names: readonly string[]): FastifyPluginAsync<{ runtime: ServiceRuntime }>[] {
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    needed.add(name);
    const plugin = servicePlugins.find((candidate) => metaOf(candidate).name === name);
    if (!plugin) throw new Error(`no infrastructure plugin named ${name}`);
    for (const dependency of metaOf(plugin).dependencies ?? []) visit(dependency);
  };
  for (const name of names) visit(name);
  return servicePlugins.filter((plugin) => needed.has(metaOf(plugin).name)) as unknown as FastifyPluginAsync<{ runtime: ServiceRuntime }>[];
}

/** Each route plugin, in buildApp's order, with a route it answers by plain GET (the WebSocket routes need an upgrade). */
const routePlugins = [
  { plugin: restRoutes, url: '/v1/symbols' },
  { plugin: ingestRoutes, url: null },
  { plugin: checkpointRoutes, url: '/v1/symbols/AMZN/checkpoints' },
  { plugin: webSocketRoutes, url: null },
  { plugin: metricsRoute, url: '/metrics' },
  { plugin: dashboardRoutes, url: '/v1/status' },
] as const;

describe('route plugins', () => {
  it('are every route plugin buildApp registers, after the infrastructure in dependency order', async () => {
    const app = await buildApp({ config: configWith({}), serviceLogger: quiet, logger: false });
    open.push(app);
    await app.ready();
    // The top level of fastify's plugin tree, in registration order (avvio's own wrappers left out).
    const topLevel = app
      .printPlugins()
      .split('\n')
      .map((line) => /^[├└]─[─┬] (\S+) \d+ ms$/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined && name !== 'bound' && !name.startsWith('@fastify/'));
    expect(topLevel).toEqual([...servicePlugins.map((plugin) => metaOf(plugin).name), ...routePlugins.map(({ plugin }) => metaOf(plugin).name)]);
  });

  it.each(routePlugins.map(({ plugin }) => [metaOf(plugin).name, plugin] as const))(
    '%s does not register without its dependencies, and says which is missing',
    async (name, plugin) => {
      const { dependencies = [] } = metaOf(plugin);
      expect(dependencies.length).toBeGreaterThan(0);
      await expect(bareApp().register(plugin as FastifyPluginAsync)).rejects.toThrow(`The dependency '${dependencies[0]}' of plugin '${name}' is not registered`);
      // With every infrastructure plugin but one it needs (and what needs that one), it still refuses.
      for (const missing of dependencies) {
        const runtime = lentRuntime();
        const app = bareApp();
        const present = closureOf(dependencies).filter((infrastructure) => !closureOf([metaOf(infrastructure).name]).some((needed) => metaOf(needed).name === missing));
        for (const infrastructure of present) await app.register(infrastructure, { runtime });
        const firstAbsent = dependencies.find((dependency) => !present.some((infrastructure) => metaOf(infrastructure).name === dependency));
        expect(firstAbsent).toBeDefined();
        await expect(app.register(plugin as FastifyPluginAsync)).rejects.toThrow(`The dependency '${firstAbsent}' of plugin '${name}' is not registered`);
      }
    },
  );

  it.each(routePlugins.map(({ plugin, url }) => [metaOf(plugin).name, plugin, url] as const))('%s serves with only the plugins it declares', async (_name, plugin, url) => {
    const runtime = lentRuntime();
    const app = bareApp();
    for (const infrastructure of closureOf(metaOf(plugin).dependencies ?? [])) await app.register(infrastructure, { runtime });
    await app.register(plugin as FastifyPluginAsync);
    await app.ready();
    if (url !== null) expect((await app.inject({ url })).statusCode).toBe(200);
    expect(runtime.ingest(snapshots).accepted).toHaveLength(snapshots.length);
    if (url !== null) expect((await app.inject({ url })).statusCode).toBe(200);
  });
});
