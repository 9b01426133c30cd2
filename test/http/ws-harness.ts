// The WebSocket test harness: a runtime and app on 127.0.0.1:0 cleaned up after each test, a
// recording client, and the recorded LOBSTER books (AMZN via the canonical JSONL fixture, AAPL
// via the LOBSTER reader) that the WebSocket and hostile-input tests push.
import Fastify, { type FastifyInstance } from 'fastify';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import type { BookSnapshot } from '../../src/domain/types.js';
import { buildApp, requireToken } from '../../src/http/app.js';
import { registerWebSocketRoutes, type StreamLimits } from '../../src/http/ws.js';
import { serviceConfigSchema, type ServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime, type RuntimeLogger } from '../../src/service/runtime.js';
import { toCanonicalJson } from '../../src/venues/canonical.js';
import { lobster } from '../../src/venues/lobster.js';

export interface CanonicalRow {
  symbol: string;
  ts: number;
  seq?: number;
  bids: [number, number][];
  asks: [number, number][];
}

const fixtures = join(import.meta.dirname, '../../fixtures');
export const AMZN: readonly CanonicalRow[] = readFileSync(join(fixtures, 'canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.length > 0)
  .map((line) => JSON.parse(line) as CanonicalRow);

export async function readAapl(count: number): Promise<CanonicalRow[]> {
  const stem = join(fixtures, 'lobster/AAPL_2012-06-21_34200000_57600000');
  const rows: CanonicalRow[] = [];
  for await (const message of lobster.read([`${stem}_message_10.csv`, `${stem}_orderbook_10.csv`], { levels: 5 })) {
    if (message.type === 'book_snapshot') rows.push(JSON.parse(toCanonicalJson(message)) as CanonicalRow);
    if (rows.length === count) break;
  }
  return rows;
}

/** The AMZN rows cycled without end: row i of the cycle gets seq i and a ts that keeps rising. */
export function amznTick(i: number): CanonicalRow {
  const row = AMZN[i % AMZN.length];
  return { ...row, seq: i, ts: AMZN[0].ts + i };
}

const flat = (levels: [number, number][]): Float64Array => Float64Array.from(levels.flat());
const AMZN_BOOKS = AMZN.map((row) => ({ bids: flat(row.bids), asks: flat(row.asks) }));

/** `amznTick(i)` as an already checked snapshot of the stream push:AMZN, straight into the engine (many ticks, fast). */
export function amznSnapshot(i: number): BookSnapshot {
  const { bids, asks } = AMZN_BOOKS[i % AMZN.length];
  const ts = AMZN[0].ts + i;
  return { type: 'book_snapshot', symbol: 'push:AMZN', ts, localTs: ts, seq: i, bids, asks };
}

export const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };

export interface Service {
  readonly runtime: ServiceRuntime;
  readonly app: FastifyInstance;
  readonly url: string;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

export function newRuntime(overrides: Partial<ServiceConfig>): ServiceRuntime {
  const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-ws-'));
  // Cheap models keep thousands of ticks fast; the routes do not care which models run.
  const config = serviceConfigSchema.parse({ db: join(dir, 'db.sqlite'), demoFeed: false, models: 'logistic,majority', levels: 5, workers: 1, ...overrides });
  const runtime = new ServiceRuntime(config, quiet);
  cleanups.push(async () => {
    await runtime.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return runtime;
}

export async function listen(app: FastifyInstance, runtime: ServiceRuntime): Promise<Service> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  return { runtime, app, url: `ws://127.0.0.1:${port}` };
}

/** The whole app, as served. */
export async function startService(overrides: Partial<ServiceConfig> = {}): Promise<Service> {
  const runtime = newRuntime(overrides);
  return listen(await buildApp({ runtime }), runtime);
}

/** Only the WebSocket routes, with limits small enough to reach in a test. */
export async function startStreamOnly(overrides: Partial<ServiceConfig>, limits: StreamLimits): Promise<Service> {
  const runtime = newRuntime(overrides);
  const app = Fastify();
  await registerWebSocketRoutes(app, runtime, requireToken(runtime.config.token), limits);
  return listen(app, runtime);
}

export type Reply = Record<string, unknown> & { type: string };

/** A client that records every frame it receives and how the connection ended. */
export class Client {
  readonly received: Reply[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      this.received.push(JSON.parse(data.toString('utf8')) as Reply);
      this.wake();
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.wake();
    });
    cleanups.push(async () => {
      if (socket.readyState !== socket.CLOSED) socket.terminate();
    });
  }

  static connect(url: string, headers: Record<string, string> = {}, options: ClientOptions = {}): Promise<Client> {
    const socket = new WebSocket(url, { ...options, headers });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new Client(socket)));
      socket.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
      socket.once('error', reject);
    });
  }

  send(value: unknown): void {
    this.socket.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  of(type: string): Reply[] {
    return this.received.filter((reply) => reply.type === type);
  }

  /** Resolves once `done()` holds, checked after every frame; rejects after `ms`. */
  until(done: () => boolean, ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; received ${JSON.stringify(this.received.slice(-3))}, closed ${JSON.stringify(this.closed)}`)), ms);
      const check = () => {
        if (done()) {
          clearTimeout(timer);
          resolve();
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** A subscribe/unsubscribe round trip: frames sent before the answer arrive before it. */
  async command(value: unknown): Promise<Reply> {
    const before = this.received.length;
    this.send(value);
    await this.until(() => this.received.slice(before).some((r) => r.type === 'subscriptions' || r.type === 'error'));
    return this.received.slice(before).find((r) => r.type === 'subscriptions' || r.type === 'error') as Reply;
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const check of waiting) check();
  }
}

export function waitFor(done: () => boolean, ms = 5000): Promise<void> {
  const what = done.toString();
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (done()) {
        clearInterval(poll);
        resolve();
      } else if (Date.now() - started > ms) {
        clearInterval(poll);
        reject(new Error(`not reached in ${ms} ms: ${what}`));
      }
    }, 10);
  });
}

export const acceptedSeqs = (client: Client): number[] => client.of('ack').flatMap((ack) => (ack.accepted as Array<{ symbol: string; seq: number }>).map((a) => a.seq));
