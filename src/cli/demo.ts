// `lob-rtrl demo`: replays the bundled real
// LOBSTER excerpt through the full engine and prints what every model learned.
import type { Command } from 'commander';
import { join } from 'node:path';
import { packageRoot } from '../domain/package-root.js';
import { defaultEngineConfig } from '../engine/config.js';
import { runReplay } from './replay.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('replay the bundled real-data excerpt (Nasdaq AMZN, LOBSTER) and print what each model learned')
    .action(async () => {
      const root = packageRoot();
      const files = [
        join(root, 'fixtures/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv'),
        join(root, 'fixtures/lobster/AMZN_2012-06-21_34200000_57600000_orderbook_5.csv'),
      ];
      const config = { ...defaultEngineConfig, levels: 5 };
      process.stdout.write('lob-rtrl demo: the first 2,000 events of Nasdaq AMZN on 2012-06-21 (LOBSTER sample, 5 levels),\n');
      process.stdout.write('predicting the direction of the next mid-price change, every model learning online.\n\n');
      const report = await runReplay({ files, format: 'lobster', config, speed: 'max' });
      const symbol = report.symbols[0];
      const rows = symbol.models.map((m) => `  ${m.name.padEnd(10)} accuracy ${m.accuracy?.toFixed(3) ?? '-'}  log-loss ${m.logLoss?.toFixed(3) ?? '-'}  scored ${m.n}`);
      process.stdout.write(
        `${symbol.symbol}: ${symbol.ticks} snapshots in ${report.wallSeconds.toFixed(2)} s (${Math.round(report.eventsPerSecond)} events/s)\n${rows.join('\n')}\n\n`,
      );
      const best = [...symbol.models].sort((a, b) => (b.accuracy ?? 0) - (a.accuracy ?? 0))[0];
      process.stdout.write(`best next-move accuracy on this excerpt: ${best.name}. A 2,000-event excerpt is short; replay the full\n`);
      process.stdout.write(
        `sample for a real comparison: lob-rtrl replay ../shared/data/lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip --format lobster --levels 5 --html report.html\n`,
      );
    });
}
