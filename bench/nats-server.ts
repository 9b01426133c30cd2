// A real nats-server with JetStream on loopback for the distributed mode's tests and benchmark
// (Debian's `nats-server` package; .ci/run installs it). Each caller gets its own server, port
// and store folder, removed at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM, or SIGKILL with `hard`) and waits for it to exit. */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port and store: what a restarted NATS looks like to clients. */
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  dispose(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** `extraConfig` is appended to the server's configuration file (users and permissions). */
export async function startNatsServer(extraConfig = ''): Promise<NatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-nats-'));
  const storeDir = join(dir, 'store');
  const configFile = join(dir, 'nats.conf');
  writeFileSync(configFile, `listen: "127.0.0.1:${port}"\njetstream { store_dir: "${storeDir}" }\n${extraConfig}\n`);
  let child: ChildProcess | null = null;
  const launch = async () => {
    const started = spawn('nats-server', ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Server is ready')) resolve();
      };
      started.stdout?.on('data', onData);
      started.stderr?.on('data', onData);
      started.once('error', (error) => reject(new Error(`nats-server could not start (${error.message}); install it with apt-get install nats-server`)));
      started.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${output.slice(-1000)}`)));
    });
  };
  const stop = async (hard = false) => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    restart: launch,
    async dispose() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
