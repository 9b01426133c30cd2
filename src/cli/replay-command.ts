import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { defaultWorkerCount } from '../engine/worker-pool.js';
import { engineConfigFromFlags, speedOption, UsageError, workersOption, type ModelFlags } from './options.js';
import { kernelChoiceOf, resolveRtrlKernelOrExplain } from './kernel-choice.js';
import { runReplay } from './replay.js';
import { fileFormats } from '../venues/registry.js';

interface ReplayFlags extends ModelFlags {
  format: string;
  symbol?: string;
  out?: string;
  featuresOut?: string;
  report?: string;
  html?: string;
  db?: string;
  speed: string;
  progress: boolean;
  kernel?: string;
  json?: boolean;
  workers?: string;
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description('replay historical order-book files through the engine and score every model prequentially')
    .argument('<files...>', 'input files, in order (several files continue one stream; tardis-csv merges book and trades files by arrival)')
    .requiredOption('--format <format>', `input format: ${Object.keys(fileFormats).join('|')}`)
    .option('--symbol <symbol>', 'symbol name to use (default: from the data or the file name)')
    .option('--levels <n>', 'book levels per side used for features', '10')
    .option('--target <target>', 'next-move | horizon:K[:THETA] (ticks) | horizon:1s, horizon:500ms[:THETA] (venue time)', 'next-move')
    .option('--hidden <n>', 'hidden units of the recurrent models')
    .option('--lr <rate>', 'learning rate alpha_0')
    .option('--seed <n>', 'initialisation seed')
    .option('--models <list>', 'comma-separated: rtrl,tbptt:K,logistic,majority,mix', 'rtrl,tbptt:10,logistic,majority,mix')
    .option('--out <file>', "write every tick: every model's probabilities and the realised label (JSON lines, or Apache Parquet for *.parquet)")
    .option('--features-out <file>', "write every tick's feature vector with its realised label (JSON lines, or Parquet for *.parquet)")
    .option('--report <file>', 'write the evaluation report as JSON')
    .option('--html <file>', 'write a self-contained HTML report')
    .option('--db <file>', 'SQLite checkpoint database: resume each symbol from it, checkpoint at the end')
    .option('--speed <speed>', 'max, or a multiple of the recorded pacing', 'max')
    .option('--workers <n>', 'worker threads the symbols are spread over (env LOB_RTRL_WORKERS; default one per core; 0 or 1: all on the main thread)')
    .option('--no-progress', 'do not print progress to stderr')
    .option('--kernel <kernel>', 'RTRL kernel: auto|js|native (default LOB_RTRL_KERNEL, else auto)')
    .option('--json', 'print the summary as JSON (the --report document) instead of a table')
    .action(async (files: string[], flags: ReplayFlags) => {
      if (!(flags.format in fileFormats)) throw new UsageError(`--format: unknown format "${flags.format}" (expected ${Object.keys(fileFormats).join(', ')})`);
      for (const file of files) if (!existsSync(file)) throw new UsageError(`${file}: no such file or folder`);
      const config = engineConfigFromFlags(flags);
      const kernel = resolveRtrlKernelOrExplain(kernelChoiceOf(flags.kernel, process.env));
      process.stderr.write(`RTRL kernel: ${kernel.name}${kernel.fallbackReason === undefined ? '' : ` (native not available: ${kernel.fallbackReason})`}\n`);
      const workers = workersOption(flags.workers, process.env.LOB_RTRL_WORKERS, defaultWorkerCount());
      const report = await runReplay({
        files,
        format: flags.format,
        symbol: flags.symbol,
        config,
        out: flags.out,
        featuresOut: flags.featuresOut,
        report: flags.report,
        html: flags.html,
        db: flags.db,
        speed: speedOption(flags.speed),
        workers,
        progress: flags.progress ? process.stderr : undefined,
        logger: { warn: (fields, message) => process.stderr.write(`warning: ${message} ${JSON.stringify(fields)}\n`) },
      });
      if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printSummary(report);
    });
}

function printSummary(report: Awaited<ReturnType<typeof runReplay>>): void {
  const lines = [
    `events read ${report.eventsRead}, accepted ${report.accepted}, rejected ${Object.values(report.rejected).reduce((a, b) => a + b, 0)}, disconnects ${report.disconnects}, trades ${report.trades}, order events ${report.orderEvents}`,
    `${report.wallSeconds.toFixed(1)} s, ${Math.round(report.eventsPerSecond)} events/s (RTRL kernel ${report.kernel}), step latency p50 ${report.stepLatencyUs.p50?.toFixed(0)} us p99 ${report.stepLatencyUs.p99?.toFixed(0)} us`,
  ];
  for (const symbol of report.symbols) {
    lines.push(`${symbol.symbol}: ${symbol.ticks} ticks${symbol.resumedFromCheckpoint === null ? '' : ` (resumed from checkpoint ${symbol.resumedFromCheckpoint})`}`);
    lines.push(`  ${'model'.padEnd(10)} ${'n'.padStart(8)} ${'accuracy'.padStart(9)} ${'macroF1'.padStart(8)} ${'logLoss'.padStart(8)} ${'brier'.padStart(7)}`);
    for (const model of symbol.models) {
      const f = (v: number | null, digits = 4) => (v === null ? '-' : v.toFixed(digits));
      lines.push(
        `  ${model.name.padEnd(10)} ${String(model.n).padStart(8)} ${f(model.accuracy).padStart(9)} ${f(model.macroF1).padStart(8)} ${f(model.logLoss).padStart(8)} ${f(model.brier).padStart(7)}`,
      );
    }
    if (symbol.mixWeights) lines.push(`  mix weights: ${symbol.mixWeights.map(({ model, weight }) => `${model} ${weight.toFixed(3)}`).join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
