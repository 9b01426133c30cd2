// The service configuration: defaults < JSON file < LOB_RTRL_* environment < flags, and one
// line naming the key for every kind of bad value.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { serveDefaults } from '../../src/cli/serve.js';
import { packageRoot } from '../../src/domain/package-root.js';
import { defaultEngineConfig, engineConfigHash } from '../../src/engine/config.js';
import { ConfigError, engineConfigOf, envName, loadServiceConfig, serviceConfigSchema } from '../../src/service/config.js';
import { ensureBuilt } from './spawned-service.js';

function configFile(content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-config-')), 'config.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** The ConfigError message `load` throws (fails the test if it does not throw one). */
function problemOf(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadServiceConfig', () => {
  it('reads "false" in a JSON file as false, and refuses a word that is not a boolean, naming the key', () => {
    expect(loadServiceConfig({ file: configFile({ demoFeed: 'false' }) }).demoFeed).toBe(false);
    expect(loadServiceConfig({ file: configFile({ demoFeed: false }) }).demoFeed).toBe(false);
    expect(loadServiceConfig({ file: configFile({ demoFeed: 'ON' }) }).demoFeed).toBe(true);
    expect(loadServiceConfig({ env: { LOB_RTRL_DEMO_FEED: 'no' } }).demoFeed).toBe(false);
    expect(problemOf(() => loadServiceConfig({ file: configFile({ demoFeed: 'maybe' }) }))).toMatch(/^demoFeed \(LOB_RTRL_DEMO_FEED\): expected true or false/);
  });

  it('ignores, with one warning, the service-link variables Kubernetes injects for a Service named lob-rtrl', () => {
    const env = {
      LOB_RTRL_SERVICE_HOST: '10.96.0.12',
      LOB_RTRL_SERVICE_PORT: '8080',
      LOB_RTRL_SERVICE_PORT_HTTP: '8080',
      LOB_RTRL_PORT: 'tcp://10.96.0.12:8080',
      LOB_RTRL_PORT_8080_TCP: 'tcp://10.96.0.12:8080',
      LOB_RTRL_PORT_8080_TCP_PROTO: 'tcp',
      LOB_RTRL_PORT_8080_TCP_PORT: '8080',
      LOB_RTRL_PORT_8080_TCP_ADDR: '10.96.0.12',
      LOB_RTRL_LOG_LEVEL: 'warn',
    };
    const warnings: string[] = [];
    const config = loadServiceConfig({ env, warnings });
    expect(config).toMatchObject({ port: 8080, logLevel: 'warn' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^ignoring Kubernetes service-link variables LOB_RTRL_SERVICE_HOST, .*LOB_RTRL_PORT_8080_TCP_ADDR .*listening on the default port 8080/);
    // A port from a flag or the config file wins and the warning says nothing about the port.
    const fromFlag: string[] = [];
    expect(loadServiceConfig({ env, flags: { port: '9100' }, warnings: fromFlag }).port).toBe(9100);
    expect(fromFlag[0]).not.toMatch(/default port/);
    expect(loadServiceConfig({ env, file: configFile({ port: 9200 }) }).port).toBe(9200);
    // A plain number in LOB_RTRL_PORT is still ours; another unknown LOB_RTRL_ variable still fatal.
    expect(loadServiceConfig({ env: { LOB_RTRL_PORT: '9300' } }).port).toBe(9300);
    expect(problemOf(() => loadServiceConfig({ env: { ...env, LOB_RTRL_PROT: '1' } }))).toBe('LOB_RTRL_PROT: unknown configuration variable');
  });

  it('has the documented defaults, and they imply the default engine', () => {
    const config = loadServiceConfig({});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      db: './data/lob-rtrl.sqlite',
      feeds: [],
      demoFeed: true,
      logLevel: 'info',
      target: 'next-move',
      models: 'rtrl,tbptt:10,logistic,majority,mix',
      checkpointKeep: 5,
      predictionRetentionSeconds: 0,
      bodyLimitBytes: 1 << 20,
    });
    expect(config.token).toBeUndefined();
    expect(engineConfigHash(engineConfigOf(config))).toBe(engineConfigHash(defaultEngineConfig));
  });

  it('serve runs a worker per core unless told; in-process one thread; defaults < file < LOB_RTRL_WORKERS < --workers; a bad count names the key', () => {
    expect(loadServiceConfig({}).workers).toBe(1);
    expect(loadServiceConfig({ defaults: serveDefaults() }).workers).toBe(availableParallelism());
    const file = configFile({ workers: 3 });
    expect(loadServiceConfig({ defaults: serveDefaults(), file }).workers).toBe(3);
    expect(loadServiceConfig({ file, env: { LOB_RTRL_WORKERS: '0' } }).workers).toBe(0);
    expect(loadServiceConfig({ file, env: { LOB_RTRL_WORKERS: '0' }, flags: { workers: '2' } }).workers).toBe(2);
    expect(() => loadServiceConfig({ env: { LOB_RTRL_WORKERS: 'many' } })).toThrow(/^workers \(LOB_RTRL_WORKERS\):/);
    expect(() => loadServiceConfig({ flags: { workers: '1.5' } })).toThrow(ConfigError);
  });

  it('layers defaults < file < environment < flags, key by key', () => {
    const file = configFile({ host: 'file-host', port: 1001, logLevel: 'debug', hidden: 4, checkpointKeep: 9 });
    const env = { LOB_RTRL_HOST: 'env-host', LOB_RTRL_PORT: '2002', LOB_RTRL_HIDDEN: '6', PATH: '/usr/bin' };
    const config = loadServiceConfig({ file, env, flags: { port: '3003', db: '/tmp/flag.sqlite', seed: undefined } });
    expect(config).toMatchObject({
      port: 3003, // flag over env over file
      host: 'env-host', // env over file
      hidden: 6, // env over file
      logLevel: 'debug', // file over default
      checkpointKeep: 9, // file over default
      db: '/tmp/flag.sqlite', // flag over default
      seed: defaultEngineConfig.learner.seed, // an undefined flag does not hide the lower layers
    });
    expect(engineConfigOf(config).learner.hidden).toBe(6);
  });

  it('reads every key from its LOB_RTRL_ variable, FEEDS as JSON and DEMO_FEED as a switch', () => {
    expect(envName('checkpointEveryTicks')).toBe('LOB_RTRL_CHECKPOINT_EVERY_TICKS');
    expect(envName('db')).toBe('LOB_RTRL_DB');
    const feeds = [{ venue: 'binance', url: 'wss://stream.binance.com:9443', restUrl: 'https://api.binance.com', symbols: ['BTCUSDT', 'ETHUSDT'] }];
    const config = loadServiceConfig({
      env: {
        LOB_RTRL_FEEDS: JSON.stringify(feeds),
        LOB_RTRL_DEMO_FEED: 'off',
        LOB_RTRL_TOKEN: 'sixteen-chars-ok',
        LOB_RTRL_CHECKPOINT_EVERY_SECONDS: '2.5',
        LOB_RTRL_TARGET: 'horizon:5:0.0001',
        LOB_RTRL_LOG_LEVEL: 'warn',
        LOB_RTRL_PORT: '', // empty counts as unset
      },
    });
    expect(config.feeds).toEqual(feeds);
    expect(config.demoFeed).toBe(false);
    expect(config.token).toBe('sixteen-chars-ok');
    expect(config.checkpointEverySeconds).toBe(2.5);
    expect(config.target).toBe('horizon:5:0.0001');
    expect(config.logLevel).toBe('warn');
    expect(config.port).toBe(8080);
    expect(loadServiceConfig({ env: { LOB_RTRL_DEMO_FEED: 'yes' } }).demoFeed).toBe(true);
    // Every key has a variable that reaches it.
    for (const key of Object.keys(serviceConfigSchema.shape)) expect(envName(key)).toMatch(/^LOB_RTRL_[A-Z_]+$/);
  });

  it('names the key and its variable for each invalid value', () => {
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_PORT: 'abc' } }))).toMatch(/^port \(LOB_RTRL_PORT\): .*expected number/);
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_PORT: '70000' } }))).toMatch(/^port \(LOB_RTRL_PORT\): .*65535/);
    expect(problemOf(() => loadServiceConfig({ flags: { hidden: '0' } }))).toMatch(/^hidden \(LOB_RTRL_HIDDEN\): /);
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_LOG_LEVEL: 'loud' } }))).toMatch(/^logLevel \(LOB_RTRL_LOG_LEVEL\): .*"info"/);
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_TOKEN: 'short' } }))).toBe('token (LOB_RTRL_TOKEN): must be at least 16 characters');
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_MODELS: 'rtrl,transformer' } }))).toBe(
      'models (LOB_RTRL_MODELS): expected a comma list of rtrl, tbptt:K, logistic, majority, mix',
    );
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_TARGET: 'horizon:x' } }))).toBe(
      'target (LOB_RTRL_TARGET): expected next-move, horizon:K, horizon:Ns or horizon:Nms, each with an optional :THETA',
    );
    expect(problemOf(() => loadServiceConfig({ file: configFile({ bodyLimitBytes: 10 }) }))).toMatch(/^bodyLimitBytes \(LOB_RTRL_BODY_LIMIT_BYTES\): /);
  });

  it('refuses unknown keys in the file, the flags and the LOB_RTRL_ environment', () => {
    expect(problemOf(() => loadServiceConfig({ file: configFile({ port: 1, prot: 2 }) }))).toBe('prot: unknown configuration key');
    expect(problemOf(() => loadServiceConfig({ flags: { verbose: true } }))).toBe('verbose: unknown configuration key');
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_PROT: '9000' } }))).toBe('LOB_RTRL_PROT: unknown configuration variable');
    // Other variables are none of our business.
    expect(loadServiceConfig({ env: { HOME: '/root', LOB_RTRLX: '1' } }).port).toBe(8080);
  });

  it('checks FEEDS: JSON first, then each feed field by path', () => {
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_FEEDS: '[{venue:binance}]' } }))).toMatch(/^LOB_RTRL_FEEDS: not valid JSON \(/);
    const feed = { venue: 'binance', url: 'wss://stream.binance.com:9443', symbols: ['BTCUSDT'] };
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_FEEDS: JSON.stringify([{ ...feed, venue: 'lobster' }]) } }))).toMatch(
      /^feeds\.0\.venue \(LOB_RTRL_FEEDS\): venue must be one of .*binance/,
    );
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_FEEDS: JSON.stringify([feed, { ...feed, url: 'not a url' }]) } }))).toMatch(/^feeds\.1\.url \(LOB_RTRL_FEEDS\): /);
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_FEEDS: JSON.stringify([{ ...feed, symbols: [] }]) } }))).toMatch(/^feeds\.0\.symbols \(LOB_RTRL_FEEDS\): /);
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_FEEDS: JSON.stringify(feed) } }))).toMatch(/^feeds \(LOB_RTRL_FEEDS\): .*expected array/);
    expect(problemOf(() => loadServiceConfig({ env: { LOB_RTRL_FEEDS: JSON.stringify([{ ...feed, depth: 7 }]) } }))).toMatch(/^feeds\.0\.depth \(LOB_RTRL_FEEDS\): /);
    expect(loadServiceConfig({ env: { LOB_RTRL_FEEDS: JSON.stringify([{ ...feed, depth: 10 }]) } }).feeds[0].depth).toBe(10);
  });

  it('names the file when it is missing, not JSON or not an object', () => {
    expect(problemOf(() => loadServiceConfig({ file: '/nonexistent/lob-rtrl.json' }))).toMatch(/^config file \/nonexistent\/lob-rtrl\.json: ENOENT/);
    const notJson = configFile('{"port": 80,}');
    expect(problemOf(() => loadServiceConfig({ file: notJson }))).toContain(`config file ${notJson}: `);
    const array = configFile([1, 2]);
    expect(problemOf(() => loadServiceConfig({ file: array }))).toBe(`config file ${array}: expected a JSON object`);
  });
});

describe('lob-rtrl serve with a bad configuration', () => {
  beforeAll(ensureBuilt, 180_000);

  it('exits 2 with one line naming the key', async () => {
    const result = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [join(packageRoot(), 'dist/src/cli/main.js'), 'serve'],
        { env: { ...process.env, LOB_RTRL_PORT: 'abc' } },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^lob-rtrl: config: port \(LOB_RTRL_PORT\): [^\n]+\n$/);
  });
});
