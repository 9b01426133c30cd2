// The client examples in examples/, run against a live service on 127.0.0.1 while recorded AMZN
// books are pushed in: each lists the running symbols and prints the predictions it streams.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { predictions, runningSymbols } from '../../examples/typescript/stream-client.js';
import { AMZN, Client, startService } from '../http/ws-harness.js';

const examples = join(import.meta.dirname, '../../examples');
// Debian's python3 carries python3-websockets; a pyenv shim earlier on PATH would not.
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Pushes AMZN books through /v1/ingest, a few at a time, until `stop()` says enough. */
async function pushUntil(url: string, stop: () => boolean): Promise<number> {
  const producer = await Client.connect(`${url}/v1/ingest`);
  let sent = 0;
  while (!stop() && sent < AMZN.length) {
    producer.send(AMZN.slice(sent, sent + 5));
    sent += 5;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return sent;
}

describe('examples/typescript/stream-client.ts', () => {
  it('lists the running symbols and yields typed, schema-checked predictions', async () => {
    const { url, runtime } = await startService();
    runtime.ingest(AMZN.slice(0, 1));
    const base = url.replace('ws://', 'http://');
    expect(await runningSymbols(base)).toEqual(['push:AMZN']);
    const received: number[] = [];
    const pushing = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      return pushUntil(url, () => received.length >= 5);
    })();
    for await (const prediction of predictions(base, 'AMZN', 5)) {
      expect(prediction.symbol).toBe('AMZN');
      expect(prediction.stream).toBe('push:AMZN');
      expect(prediction.models.map((m) => m.model)).toEqual(['logistic', 'majority']);
      for (const model of prediction.models) expect(model.probs.up).toBeGreaterThanOrEqual(0);
      received.push(prediction.seq);
    }
    await pushing;
    expect(received).toHaveLength(5);
    for (let i = 1; i < received.length; i++) expect(received[i]).toBeGreaterThan(received[i - 1]);
  });
});

describe('examples/python/stream_client.py', () => {
  it('prints the running symbols, its subscription and the predictions it streams, then exits 0', async () => {
    const { url, runtime } = await startService();
    runtime.ingest(AMZN.slice(0, 1));
    const child = spawn(python, [join(examples, 'python/stream_client.py'), '--url', url.replace('ws://', 'http://'), '--symbol', 'AMZN', '--count', '5'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let done = false;
    void exited.then(() => (done = true));
    // Push once the client has subscribed, so its first predictions are the ones pushed now.
    await expect.poll(() => stdout.includes('"subscribed"') || done, { timeout: 15_000 }).toBe(true);
    await pushUntil(url, () => done);
    const code = await exited;
    expect(code, stderr).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[0]).toEqual({ running: ['push:AMZN'] });
    expect(lines[1]).toEqual({ subscribed: ['AMZN'] });
    const printed = lines.slice(2);
    expect(printed).toHaveLength(5);
    for (const line of printed) {
      expect(line.symbol).toBe('AMZN');
      expect(Object.keys(line.up as object)).toEqual(['logistic', 'majority']);
    }
  });
});
