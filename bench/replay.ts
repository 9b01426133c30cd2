// Whole-file replays through the CLI, as a user runs them: the AMZN level-5 LOBSTER sample with
// the default models (N = 16) and with `rtrl` alone at N = 32, each on the native kernel with one
// and two kernel threads and on the TypeScript kernel. The configurations of one case run in
// turn, round after round (A B C A B C ...), so a change in the machine's load falls on all of
// them alike; each figure is the median over rounds of the replay's own events/s (its report,
// so start-up is not counted) and each ratio is the median of the per-round ratios.
//   npx tsc -p tsconfig.build.json && node dist/bench/replay.js
// LOB_BENCH_REPLAY_ROUNDS sets the rounds (default 2).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

interface Configuration {
  readonly label: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

interface ReplayCase {
  readonly label: string;
  readonly args: readonly string[];
  readonly goal: number;
  readonly configurations: readonly Configuration[];
}

const reportSchema = z.object({ eventsPerSecond: z.number(), eventsRead: z.number(), kernel: z.string() });

const nativeThreads = (threads: number): Configuration => ({
  label: `native, ${threads} kernel thread${threads === 1 ? '' : 's'}`,
  args: ['--kernel', 'native'],
  env: { LOB_RTRL_KERNEL_THREADS: String(threads) },
});
const typescriptKernel: Configuration = { label: 'TypeScript kernel', args: ['--kernel', 'js'], env: {} };

function casesOf(zip: string): ReplayCase[] {
  const common = [zip, '--format', 'lobster', '--levels', '5', '--no-progress', '--workers', '1', '--json'];
  return [
    { label: 'AMZN L5, default models (N = 16)', args: common, goal: 25_000, configurations: [nativeThreads(1), nativeThreads(2), typescriptKernel] },
    // The TypeScript kernel would take five minutes a round here (about 500 events/s).
    { label: 'AMZN L5, rtrl alone at N = 32', args: [...common, '--models', 'rtrl', '--hidden', '32'], goal: 5_000, configurations: [nativeThreads(1), nativeThreads(2)] },
  ];
}

function replayOnce(cli: string, args: readonly string[], configuration: Configuration): Promise<z.infer<typeof reportSchema>> {
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [cli, 'replay', ...args, ...configuration.args], { env: { ...process.env, ...configuration.env }, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`replay (${configuration.label}) failed: ${error.message}\n${stderr.slice(-2000)}`));
        return;
      }
      try {
        resolvePromise(reportSchema.parse(JSON.parse(stdout)));
      } catch (parseError) {
        reject(new Error(`replay (${configuration.label}) printed no report: ${(parseError as Error).message}`));
      }
    });
  });
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const rate = (value: number): string => `${Math.round(value).toLocaleString('en-US')} events/s`;

/** Prints each case's events/s per configuration and its ratio to the first, or says the sample is absent. */
export async function benchReplay(root: string, dataDir: string): Promise<void> {
  const zip = resolve(dataDir, 'lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip');
  if (!existsSync(zip)) {
    console.log(`replay bench: the AMZN sample is not at ${zip} (../shared/data absent; set LOB_SHARED_DATA); nothing measured.`);
    return;
  }
  const cli = resolve(root, 'dist/src/cli/main.js');
  const rounds = Number(process.env.LOB_BENCH_REPLAY_ROUNDS ?? 2);
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`LOB_BENCH_REPLAY_ROUNDS: must be a positive integer, got "${process.env.LOB_BENCH_REPLAY_ROUNDS}"`);
  for (const replayCase of casesOf(zip)) {
    const rates: number[][] = replayCase.configurations.map(() => []);
    let kernels: string[] = [];
    let events = 0;
    for (let round = 0; round < rounds; round++) {
      kernels = [];
      for (let i = 0; i < replayCase.configurations.length; i++) {
        const report = await replayOnce(cli, replayCase.args, replayCase.configurations[i]);
        rates[i].push(report.eventsPerSecond);
        kernels.push(report.kernel);
        events = report.eventsRead;
      }
    }
    console.log(`${replayCase.label}: ${events.toLocaleString('en-US')} events, median of ${rounds} rounds (goal ${rate(replayCase.goal)})`);
    for (let i = 0; i < replayCase.configurations.length; i++) {
      const ratio = median(rates[i].map((value, round) => value / rates[0][round]));
      console.log(`  ${replayCase.configurations[i].label.padEnd(28)} ${rate(median(rates[i])).padStart(18)}  x${ratio.toFixed(2)} of the first  (kernel ${kernels[i]})`);
    }
  }
}
