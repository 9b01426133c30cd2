// `npm run bench`: every benchmark in one run, in sections.
//   kernel    the native RTRL kernel: this core's FMA peak, sensitivity GFLOP/s and share of
//             that peak for the native and TypeScript kernels, the whole RTRL step in us on
//             both, and the numpy step of the same shape beside it
//   learners  RTRL / TBPTT / logistic steps per second and the sensitivity kernel's GFLOP/s,
//             each hidden size measured beside the same step in numpy (bench/rtrl_numpy.py)
//   features  feature extraction and online normalisation
//   sources   read throughput over the real recordings in ../shared/data
//   service   WS tick-to-prediction latency with 100 subscribers, ingest ramp, checkpoint writes
//   flood     a polite producer's ack latency and /healthz beside ten flooding producers
//   symbols   1,000 symbols: memory per idle symbol, checkpoint size, restart, checkpoint stalls
//   workers   two busy symbols: main thread, one worker thread, two worker threads (events/s)
//   replay    whole AMZN replays through the CLI: default models and rtrl at N = 32, kernel threads 1 and 2, TypeScript kernel
// `--only <section>` runs one section; `--baseline <dist/src/cli/main.js of another checkout>`
// also runs flood and symbols against that build, side by side. The recordings are looked for in
// ../shared/data next to the repository (not the working directory), or in LOB_SHARED_DATA.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { benchBinanceRaw } from './binance-raw.js';
import { benchBus } from './bus.js';
import { benchFeatures } from './features.js';
import { benchFileSources } from './file-sources.js';
import { benchFlood, formatFlood } from './flood.js';
import { benchService } from './service.js';
import { benchSymbols, formatSymbols } from './symbols.js';
import { benchReplay } from './replay.js';
import { benchWorkers } from './workers.js';
import {
  BENCH_CLASSES,
  BENCH_HIDDEN_SIZES,
  BENCH_INPUTS,
  benchLearnersAt,
  defaultTiming,
  describeLearnerBench,
  formatLearnerTable,
  formatRate,
  formatTable,
  type LearnerBenchRow,
  type TimingOptions,
} from './learners.js';
import { benchKernelAt, KERNEL_BENCH_INPUTS, KERNEL_BENCH_SIZES, loadAddonForBench, measureFmaPeaks, type KernelRow } from './kernel.js';
import { defaultOptimiserConfig } from '../src/model/optimiser.js';
import { featureDimension } from '../src/features/extract.js';

const SECTIONS = ['kernel', 'learners', 'features', 'sources', 'replay', 'service', 'flood', 'symbols', 'workers', 'bus'] as const;
type Section = (typeof SECTIONS)[number];

/** The repository root: the nearest directory above this module holding lob-rtrl's package.json. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = resolve(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'lob-rtrl') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`bench: no lob-rtrl package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** `--baseline <cli>` anywhere in the arguments, removed from them. */
function takeBaseline(argv: string[]): string | undefined {
  const at = argv.indexOf('--baseline');
  if (at < 0) return undefined;
  const [, cli] = argv.splice(at, 2);
  if (!cli) throw new Error("bench: --baseline needs the path of another build's dist/src/cli/main.js");
  return resolve(cli);
}

function parseSections(argv: readonly string[]): readonly Section[] {
  const usage = `usage: node dist/bench/run.js [--only ${SECTIONS.join('|')}] [--baseline <other checkout>/dist/src/cli/main.js]`;
  if (argv.length === 0) return SECTIONS;
  const only = argv[0] === '--only' && argv.length === 2 ? argv[1] : argv.length === 1 && argv[0].startsWith('--only=') ? argv[0].slice('--only='.length) : undefined;
  if (only === undefined) throw new Error(`bench: unexpected arguments "${argv.join(' ')}"; ${usage}`);
  const section = SECTIONS.find((name) => name === only);
  if (section === undefined) throw new Error(`bench: --only must be one of ${SECTIONS.join(', ')}, got "${only}"`);
  return [section];
}

function heading(title: string): void {
  console.log(`\n=== ${title} ${'='.repeat(Math.max(3, 76 - title.length))}`);
}

// --- numpy side ------------------------------------------------------------------------

const numpyRowSchema = z.object({
  hidden: z.number(),
  recurrentParams: z.number(),
  stepsPerSecond: z.number(),
  kernelStepsPerSecond: z.number(),
  kernelFlopsPerStep: z.number(),
  kernelGflops: z.number(),
  updates: z.number(),
  stepsRun: z.number(),
  finite: z.boolean(),
});
type NumpyRow = z.infer<typeof numpyRowSchema>;

const numpyReportSchema = z.union([
  z.object({ error: z.string(), python: z.string().optional() }),
  z.object({
    python: z.string(),
    numpy: z.string(),
    blas: z.looseObject({
      name: z.string().nullish(),
      version: z.string().nullish(),
      configuration: z.string().nullish(),
      threads: z.number().nullish(),
      coreType: z.string().nullish(),
      library: z.string().nullish(),
      cpuCount: z.number().nullish(),
      env: z.record(z.string(), z.string().nullable()).optional(),
    }),
    kernelFlopsCounted: z.string(),
    results: z.array(numpyRowSchema),
  }),
]);
type NumpyReport = z.infer<typeof numpyReportSchema>;

type NumpyOutcome = { readonly ok: true; readonly report: Extract<NumpyReport, { numpy: string }> } | { readonly ok: false; readonly reason: string };

/** Runs bench/rtrl_numpy.py with the same sizes, timing and optimiser as the JS side. */
function runNumpy(script: string, hidden: readonly number[], timing: TimingOptions, infoOnly = false, inputs = BENCH_INPUTS): Promise<NumpyOutcome> {
  const optimiser = defaultOptimiserConfig;
  const args = [
    script,
    '--hidden',
    hidden.join(','),
    '--inputs',
    String(inputs),
    '--classes',
    String(BENCH_CLASSES),
    '--repeats',
    String(timing.repeats),
    '--min-repeat-seconds',
    String(timing.minRepeatSeconds),
    '--warmup-seconds',
    String(timing.warmupSeconds),
    '--learning-rate',
    String(optimiser.learningRate),
    '--adam-beta1',
    String(optimiser.adamBeta1),
    '--adam-beta2',
    String(optimiser.adamBeta2),
    '--adam-epsilon',
    String(optimiser.adamEpsilon),
    '--clip-norm',
    String(optimiser.clipNorm),
    ...(infoOnly ? ['--info-only'] : []),
  ];
  return new Promise((done) => {
    // The environment is passed unchanged: OPENBLAS_CORETYPE and thread settings are the machine's.
    execFile('python3', args, { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) {
        const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
        done({ ok: false, reason: missing ? 'python3 was not found on PATH' : `python3 ${script} failed: ${stderr.trim() || error.message}` });
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        done({ ok: false, reason: `python3 ${script} printed no JSON: ${stdout.slice(0, 200)}` });
        return;
      }
      const parsed = numpyReportSchema.safeParse(json);
      if (!parsed.success) done({ ok: false, reason: `unexpected JSON from ${script}: ${parsed.error.message}` });
      else if ('error' in parsed.data) done({ ok: false, reason: parsed.data.error });
      else done({ ok: true, report: parsed.data });
    });
  });
}

function describeNumpy(report: Extract<NumpyReport, { numpy: string }>): string {
  const { blas } = report;
  const env = Object.entries(blas.env ?? {})
    .map(([key, value]) => `${key}=${value ?? '(unset)'}`)
    .join(' ');
  const threads = blas.threads ?? 'unknown (threadpoolctl absent and OpenBLAS not queryable)';
  return [
    `python ${report.python}, numpy ${report.numpy}; BLAS ${blas.name ?? 'unknown'} ${blas.version ?? ''}`.trimEnd(),
    `  build: ${blas.configuration ?? 'n/a'}`,
    `  runtime: core kernel ${blas.coreType ?? 'unknown'}, BLAS threads ${threads}, cpu count ${blas.cpuCount ?? '?'}`,
    `  env: ${env}`,
  ].join('\n');
}

function formatComparison(js: readonly LearnerBenchRow[], numpy: readonly NumpyRow[]): string {
  return formatTable(
    ['N', 'numpy steps/s', 'JS rtrl steps/s', 'JS/numpy step', 'numpy S GFLOP/s', 'JS S GFLOP/s', 'JS/numpy S-kernel'],
    numpy.map((row) => {
      const mine = js.find((candidate) => candidate.hidden === row.hidden);
      if (mine === undefined) throw new Error(`numpy row N=${row.hidden} has no JS row`);
      return [
        String(row.hidden),
        formatRate(row.stepsPerSecond),
        formatRate(mine.rtrlStepsPerSecond),
        (mine.rtrlStepsPerSecond / row.stepsPerSecond).toFixed(2),
        row.kernelGflops.toFixed(2),
        mine.kernelGflops.toFixed(2),
        (mine.kernelStepsPerSecond / row.kernelStepsPerSecond).toFixed(2),
      ];
    }),
  );
}

// --- sections --------------------------------------------------------------------------

async function learnersSection(root: string): Promise<void> {
  heading('learners (JS, single thread)');
  const timing = defaultTiming;
  console.log(describeLearnerBench(timing));
  const script = resolve(root, 'bench/rtrl_numpy.py');
  const probe = await runNumpy(script, [], timing, true);
  let numpyUnavailable = probe.ok ? undefined : probe.reason;
  const jsRows: LearnerBenchRow[] = [];
  const numpyRows: NumpyRow[] = [];
  // Interleaved per N, so each JS/numpy ratio is taken under the same load on a shared machine.
  for (const n of BENCH_HIDDEN_SIZES) {
    process.stderr.write(`  measuring N=${n}: JS`);
    jsRows.push(benchLearnersAt(n, timing));
    if (numpyUnavailable === undefined) {
      process.stderr.write(', numpy');
      const outcome = await runNumpy(script, [n], timing);
      if (outcome.ok) numpyRows.push(...outcome.report.results);
      else numpyUnavailable = outcome.reason;
    }
    process.stderr.write('\n');
  }
  console.log(formatLearnerTable(jsRows));

  heading('RTRL step: JS vs numpy, measured side by side');
  if (!probe.ok || numpyUnavailable !== undefined) {
    console.log(`numpy comparison SKIPPED: ${numpyUnavailable ?? 'unknown reason'}`);
    return;
  }
  console.log(describeNumpy(probe.report));
  console.log(`numpy step = the same RTRL step (state, S update with W @ S, softmax, projected rows, gradient, clip, Adam) over preallocated arrays.`);
  console.log(`S-kernel flops counted as on the JS side: ${probe.report.kernelFlopsCounted}.`);
  const unsound = numpyRows.filter((row) => !row.finite || row.updates !== row.stepsRun);
  if (unsound.length > 0) console.log(`WARNING: numpy run not one finite update per step for N = ${unsound.map((row) => row.hidden).join(', ')}`);
  console.log(formatComparison(jsRows, numpyRows));
  console.log('JS/numpy > 1: JS is faster. JS is single-threaded; numpy uses the BLAS threads above.');
}

async function kernelSection(root: string): Promise<void> {
  heading(`native RTRL kernel vs TypeScript, d = ${KERNEL_BENCH_INPUTS}, one core`);
  const addon = loadAddonForBench();
  if (typeof addon === 'string') {
    console.log(`kernel section SKIPPED: ${addon}`);
    return;
  }
  const timing = defaultTiming;
  const peaks = measureFmaPeaks(addon);
  const peak = Math.max(...peaks.map((entry) => entry.gflops));
  console.log(`native instruction set: ${addon.isa()} (this CPU runs ${addon.supportedIsas.join(', ')})`);
  console.log(
    `float64 FMA peak of one core, register-only FMA loop: ${peaks.map((entry) => `${entry.isa} ${entry.gflops.toFixed(1)} GFLOP/s`).join(', ')}; peak = ${peak.toFixed(1)}`,
  );
  const script = resolve(root, 'bench/rtrl_numpy.py');
  const probe = await runNumpy(script, [], timing, true, KERNEL_BENCH_INPUTS);
  let numpyUnavailable = probe.ok ? undefined : probe.reason;
  const rows: KernelRow[] = [];
  const numpyMicros = new Map<number, number>();
  for (const n of KERNEL_BENCH_SIZES) {
    process.stderr.write(`  measuring N=${n}: js and native`);
    rows.push(benchKernelAt(addon, n, timing));
    if (numpyUnavailable === undefined) {
      process.stderr.write(', numpy');
      const outcome = await runNumpy(script, [n], timing, false, KERNEL_BENCH_INPUTS);
      if (outcome.ok) for (const row of outcome.report.results) numpyMicros.set(row.hidden, 1e6 / row.stepsPerSecond);
      else numpyUnavailable = outcome.reason;
    }
    process.stderr.write('\n');
  }
  const ratio = (numerator: number | undefined, denominator: number): string => (numerator === undefined ? 'n/a' : (numerator / denominator).toFixed(2));
  console.log(
    formatTable(
      [
        'N',
        'js S GFLOP/s',
        'js % peak',
        'native S GFLOP/s',
        'native % peak',
        'js step us',
        'native step us',
        'native 2-thread step us',
        'numpy step us',
        'native/numpy speed',
        '2-thread/numpy speed',
      ],
      rows.map((row) => {
        const numpy = numpyMicros.get(row.hidden);
        return [
          String(row.hidden),
          row.jsKernelGflops.toFixed(2),
          ((100 * row.jsKernelGflops) / peak).toFixed(1),
          row.nativeKernelGflops.toFixed(2),
          ((100 * row.nativeKernelGflops) / peak).toFixed(1),
          row.jsStepMicros.toFixed(1),
          row.nativeStepMicros.toFixed(1),
          row.nativeTwoThreadStepMicros.toFixed(1),
          numpy === undefined ? 'n/a' : numpy.toFixed(1),
          ratio(numpy, row.nativeStepMicros),
          ratio(numpy, row.nativeTwoThreadStepMicros),
        ];
      }),
    ),
  );
  if (numpyUnavailable !== undefined) console.log(`numpy step SKIPPED: ${numpyUnavailable}`);
  else if (probe.ok) console.log(describeNumpy(probe.report));
  console.log('step = predict + resolve(label, 1), fifo pending capacity 1: state, S update, softmax, projection, gradient, clip, Adam.');
  console.log('goals: native S-kernel >= 60% of peak at every N; step at N=32 <= 150 us and >= 1.5x numpy; at N=64 >= numpy.');
}

function featuresSection(): void {
  heading('features');
  const result = benchFeatures();
  const format = (n: number): string => `${(n / 1e6).toFixed(2)} M/s`;
  console.log(
    `features L=${result.levels} (dimension ${featureDimension(result.levels)}), ${result.ticks.toLocaleString('en-US')} ticks, synthetic books: ` +
      `extract ${format(result.extractPerSecond)}, normalise ${format(result.normalisePerSecond)}, ` +
      `extract + normalise ${format(result.bothPerSecond)}`,
  );
}

async function sourcesSection(dataDir: string): Promise<void> {
  heading('market-data sources');
  const from = process.env.LOB_SHARED_DATA === undefined ? '../shared/data beside the repository' : 'LOB_SHARED_DATA';
  console.log(`recordings: ${dataDir} (${from})`);
  await benchBinanceRaw(dataDir);
  await benchFileSources(dataDir);
}

async function serviceSection(root: string): Promise<void> {
  heading('service (in one process: app, producer, subscribers)');
  await benchService(root);
}

async function floodSection(root: string, baseline: string | undefined): Promise<void> {
  heading('ingest flood (server in its own process; 10 flooders x 1,000-snapshot frames, 1 producer at 100 ticks/s)');
  const results = [];
  if (baseline) results.push(await benchFlood(root, baseline, `baseline ${baseline}`));
  results.push(await benchFlood(root, resolve(root, 'dist/src/cli/main.js'), 'this build'));
  console.log(formatFlood(results));
  console.log('goal: polite ack p99 < 50 ms and /healthz p99 < 50 ms (unanswered polite frames count at their age at the end).');
}

async function symbolsSection(root: string, baseline: string | undefined): Promise<void> {
  heading('1,000 symbols (server in its own process, default models)');
  const results = [];
  if (baseline) results.push(await benchSymbols(root, baseline, `baseline ${baseline}`));
  results.push(await benchSymbols(root, resolve(root, 'dist/src/cli/main.js'), 'this build'));
  console.log(formatSymbols(results));
  console.log('goal: at most 300 KB per idle symbol; no /healthz wait over 50 ms.');
}

async function workersSection(root: string, dataDir: string): Promise<void> {
  heading('workers (symbols on worker threads, one worker against two)');
  await benchWorkers(root, dataDir);
}

async function replaySection(root: string, dataDir: string): Promise<void> {
  heading('replay (the CLI over the AMZN level-5 sample, configurations alternated round by round)');
  await benchReplay(root, dataDir);
}

async function busSection(root: string, dataDir: string): Promise<void> {
  heading('NATS JetStream: worker processes over the market-data log (1, 2, 4 workers; failover with 2)');
  await benchBus(root, dataDir);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const baseline = takeBaseline(argv);
  const sections = parseSections(argv);
  const root = repoRoot();
  const dataDir = resolve(process.env.LOB_SHARED_DATA ?? resolve(root, '../shared/data'));
  const cpu = cpus();
  console.log(
    `lob-rtrl bench, node ${process.version}, ${cpu.length} x ${cpu[0]?.model ?? 'unknown cpu'}, ` +
      `load average ${loadavg()
        .map((value) => value.toFixed(2))
        .join(' ')}, ${new Date().toISOString()}`,
  );
  for (const section of sections) {
    if (section === 'kernel') await kernelSection(root);
    else if (section === 'learners') await learnersSection(root);
    else if (section === 'features') featuresSection();
    else if (section === 'sources') await sourcesSection(dataDir);
    else if (section === 'flood') await floodSection(root, baseline);
    else if (section === 'symbols') await symbolsSection(root, baseline);
    else if (section === 'workers') await workersSection(root, dataDir);
    else if (section === 'replay') await replaySection(root, dataDir);
    else if (section === 'bus') await busSection(root, dataDir);
    else await serviceSection(root);
  }
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
