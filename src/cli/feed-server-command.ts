import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { startFeedServer } from '../standin/server.js';
import { integerOption, speedOption, UsageError } from './options.js';

interface FeedServerFlags {
  protocol: string;
  port: string;
  host: string;
  speed: string;
  loop: boolean;
}

export function registerFeedServerCommand(program: Command): void {
  program
    .command('feed-server')
    .description('serve a recording as a local stand-in for the venue (websocket stream + REST depth snapshot)')
    .argument('<recording...>', 'raw-frame recording(s) (<receive ns> <frame> per line, gzip or plain)')
    .option('--protocol <protocol>', 'venue protocol to speak (binance)', 'binance')
    .option('--port <port>', 'port to listen on (0 = any free port)', '9443')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--speed <speed>', 'max, or a multiple of the recorded pacing', '1')
    .option('--loop', 'restart the recording at its end', false)
    .action(async (recordings: string[], flags: FeedServerFlags) => {
      if (flags.protocol !== 'binance') throw new UsageError(`--protocol: only "binance" is supported, got "${flags.protocol}"`);
      for (const file of recordings) if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
      const server = await startFeedServer({
        recording: recordings,
        host: flags.host,
        port: integerOption('port', flags.port, 0, 65535),
        speed: speedOption(flags.speed),
        loop: flags.loop,
      });
      process.stdout.write(`feed-server (binance stand-in) listening: websocket ${server.wsUrl}/stream?streams=btcusdt@depth@100ms, REST ${server.url}/api/v3/depth?symbol=BTCUSDT&limit=1000\n`);
      const stop = async () => {
        await server.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
