// The engine through its replay entry point, on real excerpts from fixtures/.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultEngineConfig, type EngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import { parseModelList } from '../../src/model/factory.js';
import { runReplay } from '../../src/cli/replay.js';
import type { BookSnapshot } from '../../src/domain/types.js';

const fixtures = join(import.meta.dirname, '../../fixtures');
const canonicalFixture = join(fixtures, 'canonical/amzn-2012-06-21-first300.jsonl');
const lobsterFixture = [join(fixtures, 'lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv'), join(fixtures, 'lobster/AMZN_2012-06-21_34200000_57600000_orderbook_5.csv')];
const config: EngineConfig = { ...defaultEngineConfig, levels: 5, learner: { ...defaultEngineConfig.learner, hidden: 8 } };

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lob-rtrl-replay-'));
}

describe('replay', () => {
  it('is deterministic: the same input gives the same predictions, byte for byte', async () => {
    const dir = tempDir();
    const runs = [join(dir, 'a.jsonl'), join(dir, 'b.jsonl')];
    for (const out of runs) await runReplay({ files: lobsterFixture, format: 'lobster', config, out, speed: 'max' });
    const a = readFileSync(runs[0], 'utf8');
    expect(a.split('\n').filter(Boolean)).toHaveLength(2000);
    expect(readFileSync(runs[1], 'utf8')).toBe(a);
    const first = JSON.parse(a.split('\n')[0]);
    expect(first).toMatchObject({ symbol: 'AMZN', seq: 0, target: 'next-move' });
    expect(first.mid).toBeCloseTo((223.18 + 223.95) / 2, 10);
    expect(first.localTs).toBe(first.ts);
    expect(Object.keys(first.models)).toEqual(['rtrl', 'tbptt:10', 'logistic', 'majority', 'mix']);
    for (const probs of Object.values(first.models) as Array<{ down: number; up: number }>) expect(probs.down + probs.up).toBeCloseTo(1, 12);
  });

  it('--out: one line per tick in tick order, each with the label its tick resolved to (the direction of the next mid change)', async () => {
    const dir = tempDir();
    await runReplay({ files: lobsterFixture, format: 'lobster', config, out: join(dir, 'out.jsonl'), speed: 'max' });
    const rows = readFileSync(join(dir, 'out.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { seq: number; mid: number; label: string | null });
    expect(rows.map((row) => row.seq)).toEqual(rows.map((_, i) => i));
    let labelled = 0;
    for (let t = 0; t < rows.length; t++) {
      const next = rows.slice(t + 1).find((row) => row.mid !== rows[t].mid);
      // Ticks after the last mid change never resolve.
      expect(rows[t].label).toBe(next === undefined ? null : next.mid > rows[t].mid ? 'up' : 'down');
      if (rows[t].label !== null) labelled++;
    }
    expect(labelled).toBeGreaterThan(1900);
  });

  it('--out and --features-out as Parquet hold the same rows as the JSON lines, features as the extractor computes them', async () => {
    const dir = tempDir();
    const models = parseModelList('logistic,majority');
    const small = { ...config, models };
    await runReplay({ files: lobsterFixture, format: 'lobster', config: small, out: join(dir, 'out.jsonl'), featuresOut: join(dir, 'features.jsonl'), speed: 'max' });
    await runReplay({ files: lobsterFixture, format: 'lobster', config: small, out: join(dir, 'out.parquet'), featuresOut: join(dir, 'features.parquet'), speed: 'max' });
    const { parquetReadObjects } = await import('hyparquet');
    const readParquet = async (path: string) => {
      const bytes = readFileSync(path);
      return parquetReadObjects({ file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
    };
    const jsonRows = readFileSync(join(dir, 'out.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(
        (line) =>
          JSON.parse(line) as {
            symbol: string;
            ts: number;
            localTs: number;
            seq: number;
            mid: number;
            target: string;
            models: Record<string, Record<string, number>>;
            label: string | null;
          },
      );
    const parquetRows = await readParquet(join(dir, 'out.parquet'));
    expect(parquetRows).toHaveLength(jsonRows.length);
    parquetRows.forEach((row, i) => {
      const json = jsonRows[i];
      expect(row).toEqual({
        symbol: json.symbol,
        ts: json.ts,
        localTs: json.localTs,
        seq: json.seq,
        mid: json.mid,
        target: json.target,
        p_down_logistic: json.models.logistic.down,
        p_up_logistic: json.models.logistic.up,
        p_down_majority: json.models.majority.down,
        p_up_majority: json.models.majority.up,
        label: json.label,
      });
    });

    // The features: recomputed here from the same books with the extractor, row for row.
    const { FeatureExtractor, featureNames } = await import('../../src/features/extract.js');
    const { lobster } = await import('../../src/venues/lobster.js');
    const extractor = new FeatureExtractor(5);
    const expected: number[][] = [];
    const vector = new Float64Array(extractor.dimension);
    for await (const message of lobster.read(lobsterFixture, { levels: 5 })) {
      if (message.type === 'trade') extractor.observeTrade(message);
      if (message.type === 'order_event') extractor.observeOrderEvent(message);
      if (message.type !== 'book_snapshot') continue;
      extractor.extract(message, vector);
      expected.push(Array.from(vector));
    }
    const names = featureNames(5);
    const featureJson = readFileSync(join(dir, 'features.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, number | string | null>);
    const featureParquet = await readParquet(join(dir, 'features.parquet'));
    expect(featureJson).toHaveLength(expected.length);
    expect(featureParquet).toEqual(featureJson);
    featureJson.forEach((row, i) => {
      expect(Object.keys(row)).toEqual(['symbol', 'ts', 'seq', ...names, 'label']);
      expect(names.map((name) => row[name])).toEqual(expected[i]);
      expect(row.label).toBe(jsonRows[i].label);
    });
  });

  it('writes a report with counts, latency and every model scored, and an HTML page', async () => {
    const dir = tempDir();
    const report = await runReplay({ files: lobsterFixture, format: 'lobster', config, report: join(dir, 'r.json'), html: join(dir, 'r.html'), speed: 'max' });
    const written = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(written).toEqual(JSON.parse(JSON.stringify(report)));
    expect(report).toMatchObject({ eventsRead: 2000, accepted: 2000, rejected: {}, disconnects: 0, trades: 365, orderEvents: 1635, featureSet: 'flow-2' });
    expect(report.symbols[0].mixWeights?.map((w) => w.model)).toEqual(['rtrl', 'tbptt:10', 'logistic', 'majority']);
    expect(report.stepLatencyUs.p50).toBeGreaterThan(0);
    const models = report.symbols[0].models;
    expect(models.map((m) => m.name)).toEqual(['rtrl', 'tbptt:10', 'logistic', 'majority', 'mix']);
    for (const model of models) {
      expect(model.n).toBeGreaterThan(1900);
      expect(model.confusion.flat().reduce((a, b) => a + b, 0)).toBe(model.n);
    }
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('AMZN');
  });

  it('resuming from --db gives the same predictions as an uninterrupted run', async () => {
    const dir = tempDir();
    const lines = readFileSync(canonicalFixture, 'utf8').split('\n').filter(Boolean);
    writeFileSync(join(dir, 'part1.jsonl'), `${lines.slice(0, 170).join('\n')}\n`);
    writeFileSync(join(dir, 'part2.jsonl'), `${lines.slice(170).join('\n')}\n`);

    await runReplay({ files: [canonicalFixture], format: 'canonical', config, out: join(dir, 'whole.jsonl'), speed: 'max' });
    const db = join(dir, 'state', 'checkpoints.sqlite');
    const first = await runReplay({ files: [join(dir, 'part1.jsonl')], format: 'canonical', config, db, speed: 'max' });
    expect(first.symbols[0].resumedFromCheckpoint).toBeNull();
    const second = await runReplay({ files: [join(dir, 'part2.jsonl')], format: 'canonical', config, db, out: join(dir, 'resumed.jsonl'), speed: 'max' });
    expect(second.symbols[0].resumedFromCheckpoint).not.toBeNull();
    expect(second.symbols[0].ticks).toBe(300);

    const whole = readFileSync(join(dir, 'whole.jsonl'), 'utf8').split('\n').filter(Boolean);
    const resumed = readFileSync(join(dir, 'resumed.jsonl'), 'utf8').split('\n').filter(Boolean);
    expect(resumed).toEqual(whole.slice(170));

    // A different configuration never loads that checkpoint.
    const other = await runReplay({ files: [join(dir, 'part2.jsonl')], format: 'canonical', config: { ...config, levels: 4 }, db, speed: 'max' });
    expect(other.symbols[0].resumedFromCheckpoint).toBeNull();
  });
});

describe('prequential metrics through the engine', () => {
  function snapshot(seq: number, mid: number): BookSnapshot {
    return { type: 'book_snapshot', symbol: 'T', ts: 1000 + seq, localTs: 1000 + seq, seq, bids: Float64Array.of(mid - 0.5, 1), asks: Float64Array.of(mid + 0.5, 1) };
  }

  it('scores each prediction once, when its label resolves, before the learner sees it (by hand)', () => {
    // Majority predicts add-one-smoothed running label frequencies. Mids 10,10,11,11,10,12:
    //  t0,t1 predict (.5,.5); t2 (mid up) resolves t0,t1 as up, counts down 0 up 2;
    //  t2,t3 predict (1/4, 3/4); t4 (mid down) resolves t2,t3 as down, counts 2/2;
    //  t4 predicts (.5,.5); t5 (mid up) resolves t4 as up, counts 2/3, and predicts (3/7, 4/7).
    // Scored: (.5,.5|up) x2, (.25,.75|down) x2, (.5,.5|up). Ties go to the lower class (down).
    //  accuracy 0/5; log-loss (3 ln 2 + 2 ln 4)/5 = 0.97041; Brier (3 * .5 + 2 * 1.125)/5 = 0.75;
    //  confusion [true][pred] = [[0, 2], [3, 0]]; macro-F1 0.
    const engine = new Engine({ ...config, models: parseModelList('majority') });
    [10, 10, 11, 11, 10, 12].forEach((mid, seq) => engine.process(snapshot(seq, mid)));
    const summary = engine.symbol('T')!.metrics[0].summary();
    expect(summary.n).toBe(5);
    expect(summary.accuracy).toBe(0);
    expect(summary.logLoss).toBeCloseTo((3 * Math.LN2 + 2 * Math.log(4)) / 5, 12);
    expect(summary.brier).toBeCloseTo(0.75, 12);
    expect(summary.confusion).toEqual([
      [0, 2],
      [3, 0],
    ]);
    expect(summary.macroF1).toBe(0);
    expect(engine.symbol('T')!.lastPrediction!.models[0].probs).toEqual([(2 + 1) / (5 + 2), (3 + 1) / (5 + 2)]);
  });

  it('a disconnect discards pending predictions unscored and restarts features', () => {
    const engine = new Engine({ ...config, models: parseModelList('majority') });
    engine.process(snapshot(0, 10));
    engine.process(snapshot(1, 10));
    engine.process({ type: 'disconnect', symbol: null, localTs: 0, reason: 'test' });
    engine.process(snapshot(2, 11));
    expect(engine.symbol('T')!.metrics[0].summary().n).toBe(0);
    expect(engine.counters.disconnects).toBe(1);
    expect(engine.symbol('T')!.learners.unscored).toBe(2);
  });

  it('counts rejected input by reason, logs each reason once, and keeps going', () => {
    const warnings: string[] = [];
    const engine = new Engine(config, { logger: { warn: (fields) => warnings.push(JSON.stringify(fields)) } });
    for (let i = 0; i < 3; i++) engine.process({ type: 'rejected', reason: 'crossed_book', detail: 'bids[0][0]: crossed', sample: '{}', symbol: 'T' });
    engine.process({ type: 'rejected', reason: 'malformed_json', detail: 'bad', sample: '{', symbol: null });
    engine.process(snapshot(0, 10));
    expect(engine.counters).toMatchObject({ eventsRead: 5, accepted: 1, rejected: { crossed_book: 3, malformed_json: 1 } });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('bids[0][0]');
  });
});

describe('tick output around a disconnect and a resume', () => {
  it('ticks pending at a disconnect leave without a label, in tick order, exactly those the learners dropped, and later ticks keep theirs', async () => {
    const { TickOutput } = await import('../../src/cli/tick-output.js');
    const { modelName } = await import('../../src/model/factory.js');
    const dir = tempDir();
    const small = { ...config, models: parseModelList('logistic') };
    const output = (await TickOutput.open({
      out: join(dir, 'out.jsonl'),
      levels: 5,
      models: small.models.map(modelName),
      target: small.target,
      maxPending: small.learner.maxPending,
    }))!;
    const engine = new Engine(small);
    engine.addSink((prediction) => output.onPrediction(prediction));
    const books = readFileSync(canonicalFixture, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { ts: number; bids: number[][]; asks: number[][] });
    const snapshot = (i: number): BookSnapshot => ({
      type: 'book_snapshot',
      symbol: 'AMZN',
      ts: books[i].ts,
      localTs: books[i].ts,
      seq: i,
      bids: Float64Array.from(books[i].bids.flat()),
      asks: Float64Array.from(books[i].asks.flat()),
    });
    for (let i = 0; i < 60; i++) engine.process(snapshot(i));
    const pendingAtBreak = engine.symbol('AMZN')!.learners.pending;
    expect(pendingAtBreak).toBeGreaterThan(0);
    engine.process({ type: 'disconnect', symbol: 'AMZN', localTs: books[60].ts, reason: 'test' });
    output.onDisconnect('AMZN', 60);
    for (let i = 60; i < 120; i++) engine.process(snapshot(i));
    await output.close();
    const rows = readFileSync(join(dir, 'out.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { seq: number; label: string | null });
    expect(rows.map((r) => r.seq)).toEqual([...Array(120).keys()]);
    const dropped = rows.slice(60 - pendingAtBreak, 60);
    expect(dropped.every((r) => r.label === null)).toBe(true);
    expect(rows[60 - pendingAtBreak - 1].label).not.toBeNull();
    expect(rows.slice(60, 100).some((r) => r.label !== null)).toBe(true);
  });
});
