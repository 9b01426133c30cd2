// A real `lob-rtrl serve` child process for the resume and crash tests: signals must reach a
// real process (SIGTERM runs the graceful shutdown, SIGKILL runs nothing), so these tests
// spawn the built CLI instead of building the app in-process. Waits are on events (log
// lines, exit), never on how fast the machine is.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/domain/package-root.js';

const root = packageRoot();
const cliEntry = join(root, 'dist/src/cli/main.js');

export interface LogLine {
  readonly msg?: string;
  readonly [field: string]: unknown;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class SpawnedService {
  readonly logs: LogLine[] = [];
  readonly exited: Promise<ExitStatus>;
  url = '';
  private stderr = '';
  private readonly waiters = new Set<() => void>();

  constructor(private readonly child: ChildProcess) {
    let pending = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ msg: line });
        }
      }
      for (const wake of this.waiters) wake();
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => {
      for (const wake of this.waiters) wake();
    });
  }

  /** The first log line matching `predicate`, waiting for it; fails if the process exits first. */
  async waitForLog(predicate: (line: LogLine) => boolean, what: string, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(predicate);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`service exited before logging ${what}; stderr: ${this.stderr.slice(-2000)}`);
      }
      if (Date.now() > deadline) throw new Error(`no ${what} in the log after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 250);
        this.waiters.add(wake);
      });
    }
  }

  logsWith(message: string): LogLine[] {
    return this.logs.filter((line) => line.msg === message);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async post(path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const response = await fetch(this.url + path, {
      method: 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: response.status, json: await response.json() };
  }

  async get<T>(path: string): Promise<T> {
    const response = await fetch(this.url + path);
    if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }
}

/** Spawns `lob-rtrl serve` on 127.0.0.1:0 with `env` added and resolves once it listens. */
export async function startService(env: Record<string, string>): Promise<SpawnedService> {
  const child = spawn(process.execPath, [cliEntry, 'serve', '--host', '127.0.0.1', '--port', '0'], {
    cwd: root,
    env: { ...process.env, LOB_RTRL_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const service = new SpawnedService(child);
  const serving = await service.waitForLog((line) => line.msg === 'lob-rtrl serving', '"lob-rtrl serving"');
  service.url = String(serving.address);
  return service;
}

/**
 * Builds dist/ when any source file is newer than the built CLI. Test files run in parallel
 * forks, so a lock folder keeps two of them from running tsc over the same outputs at once.
 * Type errors in files being edited by others do not stop tsc from emitting, so only a
 * missing CLI counts as failure.
 */
export async function ensureBuilt(): Promise<void> {
  // In the package, not the temporary folder: each test file has a temporary folder of its own.
  const lock = join(root, 'node_modules', '.lob-rtrl-test-build.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`build lock ${lock} held for two minutes; remove it if no test is running`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    if (!isStale()) return;
    await new Promise<void>((resolve) => {
      execFile(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root }, () => resolve());
    });
    statSync(cliEntry);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function isStale(): boolean {
  let built: number;
  try {
    built = statSync(cliEntry).mtimeMs;
  } catch {
    return true;
  }
  return newestSourceMtime(join(root, 'src')) > built;
}

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMtime(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}
