// End to end: the built `lob-rtrl serve` as a child process on the default built-in feed
// (the Binance stand-in over fixtures/binance, no network). A WebSocket subscriber receives
// BTCUSDT predictions, REST returns the latest, SIGTERM exits 0 after a shutdown checkpoint.
//
// The test runs the compiled CLI (dist/), as `npm start` does. Its beforeAll rebuilds dist with
// `tsc -p tsconfig.build.json` when dist/src/cli/main.js is missing or older than any file in
// src/ or migrations/, so only this file pays for a build, and only when the build is stale.
import Database from 'better-sqlite3';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'dist/src/cli/main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function buildIfStale(): void {
  const sources = Math.max(newestMtime(join(root, 'src')), newestMtime(join(root, 'migrations')));
  if (existsSync(cli) && statSync(cli).mtimeMs >= sources) return;
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** The child's pino JSON lines, and a way to wait for one. */
class ServeProcess {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  private pending = '';
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.pending += chunk;
      let newline: number;
      while ((newline = this.pending.indexOf('\n')) >= 0) {
        const text = this.pending.slice(0, newline);
        this.pending = this.pending.slice(newline + 1);
        if (text.startsWith('{')) this.lines.push(JSON.parse(text) as LogLine);
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  line(matches: (line: LogLine) => boolean, ms: number): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line in ${ms} ms; stderr: ${this.stderr}; last lines: ${JSON.stringify(this.lines.slice(-5))}`)), ms);
      const check = () => {
        const found = this.lines.find(matches);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }
}

let workDir: string;
let dbPath: string;
let port: number;
let serve: ServeProcess;

beforeAll(async () => {
  buildIfStale();
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-e2e-'));
  dbPath = join(workDir, 'nested/db.sqlite');
  port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, LOB_RTRL_DB: dbPath, LOB_RTRL_LOG_LEVEL: 'info' };
  for (const key of ['LOB_RTRL_FEEDS', 'LOB_RTRL_DEMO_FEED', 'LOB_RTRL_TOKEN', 'LOB_RTRL_CONFIG']) delete env[key];
  serve = new ServeProcess(spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', String(port)], { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] }));
}, 240_000);

afterAll(() => {
  if (serve?.child.exitCode === null) serve.child.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('lob-rtrl serve on the built-in feed', () => {
  it('streams BTCUSDT predictions over WebSocket, serves the latest over REST, and stops cleanly on SIGTERM', async () => {
    const serving = await serve.line((line) => line.msg === 'lob-rtrl serving', 30_000);
    expect(serving.address).toBe(`http://127.0.0.1:${port}`);
    const demo = serve.lines.find((line) => line.msg.startsWith('no feeds configured'));
    expect(demo?.ws).toMatch(/^ws:\/\/127\.0\.0\.1:\d+/);
    expect(serve.lines.some((line) => line.msg.includes(`/v1/stream`))).toBe(true);

    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/stream`);
    const frames: Array<Record<string, unknown>> = [];
    socket.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>));
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.send(JSON.stringify({ subscribe: ['BTCUSDT'] }));
    const predictions = () => frames.filter((frame) => frame.type === 'prediction');
    const deadline = Date.now() + 20_000;
    while (predictions().length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(frames[0]).toEqual({ type: 'subscriptions', symbols: ['BTCUSDT'] });
    expect(predictions().length).toBeGreaterThanOrEqual(3);
    const streamed = predictions();
    for (const prediction of streamed) expect(prediction.symbol).toBe('BTCUSDT');
    const seqs = streamed.map((p) => p.seq as number);
    expect(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1])).toBe(true);
    // The recording's BTC price on 2024-08-08 was about 61,000 USDT.
    expect(streamed[0].mid as number).toBeGreaterThan(50_000);
    expect(streamed[0].mid as number).toBeLessThan(70_000);

    const response = await fetch(`http://127.0.0.1:${port}/v1/symbols/BTCUSDT/prediction`);
    expect(response.status).toBe(200);
    const latest = (await response.json()) as { symbol: string; seq: number; models: Array<{ model: string; probs: Record<string, number> }> };
    expect(latest.symbol).toBe('BTCUSDT');
    // Made at or after the last one streamed before the request.
    expect(latest.seq).toBeGreaterThanOrEqual(seqs.at(-1) as number);
    expect(latest.models.map((m) => m.model)).toEqual((streamed.at(-1)?.models as Array<{ model: string }>).map((m) => m.model));
    for (const { probs } of latest.models) expect(Object.values(probs).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);

    const socketClosed = new Promise<number>((resolve) => socket.once('close', (code: number) => resolve(code)));
    serve.child.kill('SIGTERM');
    const exit = await serve.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(await socketClosed).toBe(1001);
    expect(serve.lines.some((line) => line.msg === 'stopped cleanly')).toBe(true);

    const db = new Database(dbPath, { readonly: true });
    try {
      const shutdown = db.prepare("SELECT symbol, tick_count AS ticks FROM checkpoints WHERE reason = 'shutdown'").all() as Array<{ symbol: string; ticks: number }>;
      expect(shutdown).toHaveLength(1);
      expect(shutdown[0].symbol).toBe('BTCUSDT');
      expect(shutdown[0].ticks).toBeGreaterThanOrEqual(streamed.length);
    } finally {
      db.close();
    }
  }, 90_000);
});
