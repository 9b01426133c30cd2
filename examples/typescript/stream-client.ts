// Follow lob-rtrl's predictions from TypeScript, typed by the service's own schemas and checked
// at run time with them (a frame that does not match is an error, not a silent undefined).
//
//   npx tsx examples/typescript/stream-client.ts --url http://127.0.0.1:8080 --symbol BTCUSDT --count 10
//
// Prints each prediction as one JSON line (ts, mid, every model's P(up)), then exits.
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { streamPrediction, streamSubscriptions, symbolsResponse, wsError } from '../../src/http/api-schemas.js';

export type StreamPrediction = z.infer<typeof streamPrediction>;

const streamFrame = z.discriminatedUnion('type', [streamPrediction, streamSubscriptions, wsError]);

/** The streams the service runs now, by id (`venue:symbol`): each is a name `/v1/stream` takes, as is a bare symbol. */
export async function runningSymbols(baseUrl: string): Promise<string[]> {
  const response = await fetch(`${baseUrl}/v1/symbols`);
  if (!response.ok) throw new Error(`GET /v1/symbols: HTTP ${response.status}`);
  return symbolsResponse.parse(await response.json()).symbols.map((s) => s.stream);
}

/** Yields the next `count` predictions of `symbol`; the socket closes when the loop ends. */
export async function* predictions(baseUrl: string, symbol: string, count: number): AsyncGenerator<StreamPrediction> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/stream`);
  const queue: StreamPrediction[] = [];
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  socket.on('open', () => socket.send(JSON.stringify({ subscribe: [symbol] })));
  socket.on('message', (data: Buffer) => {
    const frame = streamFrame.safeParse(JSON.parse(data.toString('utf8')));
    if (!frame.success) failure = new Error(`undocumented frame: ${z.prettifyError(frame.error)}`);
    else if (frame.data.type === 'error') failure = new Error(`refused: ${frame.data.reason}: ${frame.data.detail}`);
    else if (frame.data.type === 'prediction') queue.push(frame.data);
    notify();
  });
  socket.on('error', (error) => {
    failure = error;
    notify();
  });
  socket.on('close', () => {
    failure ??= new Error('the stream closed');
    notify();
  });
  try {
    for (let seen = 0; seen < count;) {
      if (queue.length === 0) {
        if (failure) throw failure;
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      seen++;
      yield queue.shift() as StreamPrediction;
    }
  } finally {
    socket.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const option = (name: string, fallback?: string) => {
    const index = argv.indexOf(`--${name}`);
    const value = index >= 0 ? argv[index + 1] : fallback;
    if (value === undefined) throw new Error(`--${name} is required`);
    return value;
  };
  const baseUrl = option('url', 'http://127.0.0.1:8080').replace(/\/$/, '');
  const symbol = option('symbol');
  console.log(JSON.stringify({ running: await runningSymbols(baseUrl) }));
  for await (const p of predictions(baseUrl, symbol, Number(option('count', '10')))) {
    console.log(JSON.stringify({ stream: p.stream, seq: p.seq, ts: p.ts, mid: p.mid, up: Object.fromEntries(p.models.map((m) => [m.model, m.probs.up])) }));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error((error as Error).message);
    process.exit(2);
  });
}
