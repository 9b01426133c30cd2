// `lob-rtrl predictions`: the prediction stream of a NATS deployment as JSON lines on stdout,
// read through a JetStream consumer (so the duplicates a takeover publishes are never seen),
// for one stream or all of them, from the start, the newest of each stream, or only new ones.
import type { Command } from 'commander';
import { DeliverPolicy } from '@nats-io/jetstream';
import { connectBusFromFlags, type BusFlags } from './bus-options.js';
import { predictionSubject, subjectToken } from '../bus/subjects.js';
import { UsageError } from './options.js';

interface PredictionsFlags extends BusFlags {
  venue?: string;
  symbol?: string;
  from: string;
  count?: string;
}

const FROM = { start: DeliverPolicy.All, last: DeliverPolicy.LastPerSubject, new: DeliverPolicy.New } as const;

export function registerPredictionsCommand(program: Command): void {
  program
    .command('predictions')
    .description('print the predictions of a NATS deployment (LOB_RTRL_NATS_URL) as JSON lines')
    .option('--venue <venue>', 'only this venue')
    .option('--symbol <symbol>', 'only this symbol (with --venue)')
    .option('--from <where>', 'start (everything kept), last (the newest of each stream, then new ones) or new', 'new')
    .option('--count <n>', 'stop after this many')
    .option('--nats-url <url>', 'NATS servers (LOB_RTRL_NATS_URL)')
    .option('--nats-prefix <prefix>', 'subject and stream prefix (LOB_RTRL_NATS_PREFIX)')
    .action(async (flags: PredictionsFlags) => {
      if (!(flags.from in FROM)) throw new UsageError(`--from: expected start, last or new, got "${flags.from}"`);
      if (flags.symbol !== undefined && flags.venue === undefined) throw new UsageError('--symbol: needs --venue (a stream is a venue and a symbol)');
      const count = flags.count === undefined ? Number.POSITIVE_INFINITY : Number(flags.count);
      if (!(count >= 1 && (Number.isInteger(count) || count === Number.POSITIVE_INFINITY))) throw new UsageError(`--count: must be a positive integer, got "${flags.count}"`);
      const bus = await connectBusFromFlags(flags, 'lob-rtrl predictions');
      const prefix = bus.config.natsPrefix;
      const filter =
        flags.venue === undefined
          ? `${prefix}.pred.>`
          : flags.symbol === undefined
            ? `${prefix}.pred.${subjectToken(flags.venue)}.*`
            : predictionSubject(prefix, flags.venue, flags.symbol);
      try {
        const consumer = await bus.js.consumers.get(bus.names.predictionStream, { filter_subjects: filter, deliver_policy: FROM[flags.from as keyof typeof FROM] });
        let printed = 0;
        while (printed < count) {
          const batch = await consumer.fetch({ max_messages: Math.min(1000, count - printed), expires: 5000 });
          for await (const message of batch) {
            process.stdout.write(`${message.string()}\n`);
            if (++printed >= count) break;
          }
        }
      } finally {
        await bus.close();
      }
    });
}
