// `lob-rtrl publish`: recorded files into the NATS market-data log, through the same file
// formats `replay` reads, so workers can run them (docs/scale.md). Each message is counted as
// published once JetStream acknowledged it; a second run of the same files stores nothing new
// (the message ids de-duplicate within the duplicate window).
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { MarketLogPublisher } from '../bus/market-log.js';
import { connectBusFromFlags, type BusFlags } from './bus-options.js';
import { fileFormatById, fileFormats } from '../venues/registry.js';
import { messageBatches } from '../venues/types.js';
import { UsageError } from './options.js';

interface PublishFlags extends BusFlags {
  format: string;
  venue: string;
  symbol?: string;
  levels: string;
}

export function registerPublishCommand(program: Command): void {
  program
    .command('publish')
    .description('publish recorded order-book files to the NATS market-data log (LOB_RTRL_NATS_URL) for worker processes')
    .argument('<files...>', 'input files, in order, as for replay')
    .requiredOption('--format <format>', `input format: ${Object.keys(fileFormats).join('|')}`)
    .option('--venue <venue>', 'venue id the streams are keyed by', 'file')
    .option('--symbol <symbol>', 'symbol name to use (default: from the data or the file name)')
    .option('--levels <n>', 'book levels per side kept in each snapshot', '10')
    .option('--nats-url <url>', 'NATS servers (LOB_RTRL_NATS_URL)')
    .option('--nats-prefix <prefix>', 'subject and stream prefix (LOB_RTRL_NATS_PREFIX)')
    .option('--nats-partitions <n>', 'partitions of the log (LOB_RTRL_NATS_PARTITIONS)')
    .action(async (files: string[], flags: PublishFlags) => {
      if (!(flags.format in fileFormats)) throw new UsageError(`--format: unknown format "${flags.format}" (expected ${Object.keys(fileFormats).join(', ')})`);
      for (const file of files) if (!existsSync(file)) throw new UsageError(`${file}: no such file or folder`);
      if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(flags.venue)) throw new UsageError(`--venue: must be a venue id (a-z 0-9 -, up to 32), got "${flags.venue}"`);
      const levels = Number(flags.levels);
      if (!(Number.isInteger(levels) && levels >= 1)) throw new UsageError(`--levels: must be a positive integer, got "${flags.levels}"`);
      const bus = await connectBusFromFlags(flags, 'lob-rtrl publish');
      const publisher = new MarketLogPublisher(bus);
      let rejected = 0;
      try {
        for await (const batch of messageBatches(fileFormatById(flags.format), files, { levels, symbol: flags.symbol })) {
          for (const message of batch) {
            if (message.type === 'rejected') rejected++;
            else await publisher.publish(flags.venue, message);
          }
        }
      } finally {
        await bus.close();
      }
      process.stdout.write(
        `published ${publisher.published} messages to ${bus.names.marketStream} (${publisher.duplicates} already there, ${rejected} rejected by the ${flags.format} reader)\n`,
      );
    });
}
