// Study for issue 11's BTCUSDT regression: how much of the recurrent learners' score on a short
// recording is set by their random initial readout V ~ N(0, 1/N). Replays each recording through
// the engine with the default configuration, once as shipped and once with V set to 0 right
// after the learners are built (the network then starts at the uniform prediction, as the
// logistic baseline does), over several seeds, and prints accuracy, log-loss and the number
// of optimiser steps each recurrent learner took (next-move resolves one batch per mid change,
// one Adam step each, and an Adam step moves a weight by about the learning rate whatever the
// gradient's size). Not a test: it reads ../shared/data. Run after a build:
//   npx tsc -p tsconfig.build.json && node dist/bench/readout-init.js [--amzn] [--seeds 1,2,3,4]
// LOB_SHARED_DATA overrides where the recordings are looked for.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaultEngineConfig, type EngineConfig } from '../src/engine/config.js';
import { Engine } from '../src/engine/engine.js';
import type { SymbolEngine } from '../src/engine/symbol-engine.js';
import type { OnlineLearner } from '../src/model/learner.js';
import { parseModelList } from '../src/model/factory.js';
import { RtrlLearner } from '../src/model/rtrl.js';
import { TbpttLearner } from '../src/model/tbptt.js';
import { TemperatureScaled } from '../src/model/temperature.js';
import { fileFormatById } from '../src/venues/registry.js';
import { messageBatches } from '../src/venues/types.js';

interface Case {
  readonly label: string;
  readonly format: string;
  readonly path: string;
  readonly levels: number;
}

type Readout = 'random' | 'zero';

function recurrentCore(learner: OnlineLearner): RtrlLearner | TbpttLearner | null {
  const inner = learner instanceof TemperatureScaled ? learner.inner : learner;
  return inner instanceof RtrlLearner || inner instanceof TbpttLearner ? inner : null;
}

function zeroReadout(engine: SymbolEngine): void {
  for (const learner of engine.learners.learners) {
    const core = recurrentCore(learner);
    if (core) core.params.fill(0, core.layout.vOffset, core.layout.cOffset);
  }
}

async function replayOnce(entry: Case, seed: number, readout: Readout): Promise<string> {
  const base: EngineConfig = { ...defaultEngineConfig, levels: entry.levels, models: parseModelList('rtrl,tbptt:10,logistic') };
  const config: EngineConfig = { ...base, learner: { ...base.learner, seed } };
  const engine = new Engine(config, {
    createSymbol: (_symbol, fresh) => {
      const symbolEngine = fresh();
      if (readout === 'zero') zeroReadout(symbolEngine);
      return symbolEngine;
    },
  });
  for await (const batch of messageBatches(fileFormatById(entry.format), [entry.path], { levels: entry.levels })) {
    for (const message of batch) engine.process(message);
  }
  const cells: string[] = [];
  for (const symbolEngine of engine.symbols.values()) {
    symbolEngine.metrics.forEach((metrics, i) => {
      const { accuracy, logLoss } = metrics.summary();
      const learner = symbolEngine.learners.learners[i];
      const steps = recurrentCore(learner) ? ` (${learner.stats.updates} steps)` : '';
      cells.push(`${symbolEngine.modelNames[i]} ${accuracy?.toFixed(4)} / ${logLoss?.toFixed(4)}${steps}`);
    });
  }
  return cells.join(', ');
}

export async function benchReadoutInit(dataDir: string, seeds: readonly number[], withAmzn: boolean): Promise<void> {
  const btc = resolve(dataDir, 'binance-spot-btcusdt/spot_btcusdt_20240808.gz');
  const cases: Case[] = [
    { label: 'BTCUSDT 2024-08-08 L10', format: 'binance-raw', path: btc, levels: 10 },
    { label: 'BTCUSDT 2024-08-08 L5', format: 'binance-raw', path: btc, levels: 5 },
  ];
  if (withAmzn) cases.push({ label: 'AMZN L5', format: 'lobster', path: resolve(dataDir, 'lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip'), levels: 5 });
  for (const entry of cases) {
    if (!existsSync(entry.path)) {
      console.log(`${entry.label}: ABSENT (${entry.path}), skipped`);
      continue;
    }
    for (const readout of ['random', 'zero'] as const) {
      for (const seed of seeds) console.log(`${entry.label}, readout ${readout}, seed ${seed}: ${await replayOnce(entry, seed, readout)}`);
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const seedsAt = args.indexOf('--seeds');
  const seeds = seedsAt >= 0 ? (args[seedsAt + 1] ?? '1').split(',').map(Number) : [1, 2, 3, 4];
  await benchReadoutInit(process.env.LOB_SHARED_DATA ?? resolve(process.cwd(), '../shared/data'), seeds, args.includes('--amzn'));
}
