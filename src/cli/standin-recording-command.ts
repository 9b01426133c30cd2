import type { Command } from 'commander';
import { createWriteStream, existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CONVERSION_TARGETS, convertBinanceRecording, type ConversionReport, type ConversionTarget } from '../standin/convert-binance.js';
import { UsageError } from './options.js';

interface StandinRecordingFlags {
  venue: string;
  out: string;
}

export function registerStandinRecordingCommand(program: Command): void {
  program
    .command('standin-recording')
    .description("re-encode a Binance spot recording (book evolution and trades) in another venue's websocket protocol, for its feed-server stand-in")
    .argument('<binance-recording...>', 'Binance raw-frame recording(s) of one symbol with the REST snapshot inline (<receive ns> <frame> per line, gzip or plain)')
    .requiredOption('--venue <venue>', `target protocol (${CONVERSION_TARGETS.join(', ')})`)
    .requiredOption('--out <file>', 'recording to write (gzip when it ends in .gz)')
    .action(async (recordings: string[], flags: StandinRecordingFlags) => {
      if (!(CONVERSION_TARGETS as readonly string[]).includes(flags.venue)) {
        throw new UsageError(`--venue: expected one of ${CONVERSION_TARGETS.join(', ')}, got "${flags.venue}"`);
      }
      for (const file of recordings) if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
      const report: ConversionReport = { lines: 0, diffs: 0, trades: 0, stoppedAt: null };
      const lines = convertBinanceRecording(recordings, flags.venue as ConversionTarget, report);
      const text = Readable.from(
        (async function* () {
          for await (const line of lines) yield `${line}\n`;
        })(),
      );
      const file = createWriteStream(flags.out);
      await (flags.out.endsWith('.gz') ? pipeline(text, createGzip({ level: 9 }), file) : pipeline(text, file));
      process.stdout.write(`${flags.out}: ${report.lines} lines (${report.diffs} Binance diffs, ${report.trades} trades) as ${flags.venue}\n`);
      if (report.stoppedAt !== null) process.stderr.write(`stopped early: ${report.stoppedAt}\n`);
    });
}
