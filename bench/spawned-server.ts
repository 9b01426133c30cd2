// A `lob-rtrl serve` child process for the benchmarks that load the service from outside: its
// own process (its own event loop and heap, measured through /proc), so producers, pollers and
// the server do not share a thread. `cli` may point at another build (an older checkout) to
// measure before and after side by side with the same load.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface SpawnedServer {
  readonly url: string;
  readonly child: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  /** Resident memory of the server process, bytes (from /proc; NaN where /proc is absent). */
  rssBytes(): number;
  /** Resolves with the first log line matching, or rejects after `ms`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  stop(): Promise<number | null>;
}

export async function spawnServer(cli: string, env: Record<string, string>): Promise<SpawnedServer> {
  const child = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', '0'], {
    env: { ...process.env, LOB_RTRL_LOG_LEVEL: 'info', LOB_RTRL_DEMO_FEED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let pending = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => {
    for (const wake of waiters) wake();
  });

  const waitForLog = (predicate: (line: Record<string, unknown>) => boolean, ms = 120_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const deadline = setTimeout(() => done(new Error(`no such log line within ${ms} ms; stderr: ${stderr.slice(-500)}`)), ms);
      const check = () => {
        const found = logs.find(predicate);
        if (found) done(null, found);
        else if (child.exitCode !== null) done(new Error(`server exited with ${child.exitCode}: ${stderr.slice(-500)}`));
      };
      const done = (error: Error | null, line?: Record<string, unknown>) => {
        clearTimeout(deadline);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(line as Record<string, unknown>);
      };
      waiters.add(check);
      check();
    });

  const serving = await waitForLog((line) => line.msg === 'lob-rtrl serving');
  return {
    url: String(serving.address),
    child,
    logs,
    rssBytes() {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const match = /VmRSS:\s+(\d+) kB/.exec(status);
        return match ? Number(match[1]) * 1024 : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    waitForLog,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** p50, p99 and max of a list of numbers (NaN when empty). */
export function percentiles(values: readonly number[]): { p50: number; p99: number; max: number } {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}
