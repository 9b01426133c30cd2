import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { startFeedServer, STAND_IN_VENUES, type FeedServer, type StandInVenue } from '../standin/server.js';
import { integerOption, speedOption, UsageError } from './options.js';

interface FeedServerFlags {
  venue: string;
  protocol?: string;
  port: string;
  host: string;
  speed: string;
  loop: boolean;
}

/** How to reach the stand-in, and the LOB_RTRL_FEEDS entry that points the service at it. */
function connectionHint(server: FeedServer): string {
  const symbol = server.recording.symbols[0] ?? 'SYMBOL';
  const feed = (venue: string, extra = '') => `LOB_RTRL_FEEDS='[{"venue":"${venue}","url":"${server.wsUrl}"${extra},"symbols":["${symbol}"]}]'`;
  if (server.venue === 'binance') {
    return `websocket ${server.wsUrl}/stream?streams=${symbol.toLowerCase()}@depth@100ms, REST ${server.url}/api/v3/depth?symbol=${symbol}&limit=1000\n  ${feed('binance', `,"restUrl":"${server.url}"`)}`;
  }
  return `websocket ${server.wsUrl} (${server.recording.symbols.join(', ')})\n  ${feed(server.venue)}`;
}

export function registerFeedServerCommand(program: Command): void {
  program
    .command('feed-server')
    .description('serve a recording as a local stand-in for the venue (websocket stream, and REST depth for Binance)')
    .argument('<recording...>', "raw-frame recording(s) in the venue's own protocol (<receive ns> <frame> per line, gzip or plain)")
    .option('--venue <venue>', `venue protocol to speak (${STAND_IN_VENUES.join(', ')})`, 'binance')
    .option('--protocol <venue>', 'the same as --venue (kept for existing scripts)')
    .option('--port <port>', 'port to listen on (0 = any free port)', '9443')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--speed <speed>', 'max, or a multiple of the recorded pacing', '1')
    .option('--loop', 'restart the recording at its end', false)
    .addHelpText('after', '\nFault controls while it runs: SIGUSR1 drops every connection, SIGUSR2 makes every client miss its next book update.')
    .action(async (recordings: string[], flags: FeedServerFlags) => {
      const venue = flags.protocol ?? flags.venue;
      if (!(STAND_IN_VENUES as readonly string[]).includes(venue)) {
        throw new UsageError(`--venue: expected one of ${STAND_IN_VENUES.join(', ')}, got "${venue}"`);
      }
      for (const file of recordings) if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
      const server = await startFeedServer({
        recording: recordings,
        venue: venue as StandInVenue,
        host: flags.host,
        port: integerOption('port', flags.port, 0, 65535),
        speed: speedOption(flags.speed),
        loop: flags.loop,
      });
      process.stdout.write(`feed-server (${venue} stand-in) listening: ${connectionHint(server)}\n`);
      process.on('SIGUSR1', () => {
        process.stdout.write(`feed-server: dropped ${server.dropConnections()} connection(s)\n`);
      });
      process.on('SIGUSR2', () => {
        server.skipBookUpdates(1);
        process.stdout.write('feed-server: every client misses its next book update\n');
      });
      const stop = async () => {
        await server.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
