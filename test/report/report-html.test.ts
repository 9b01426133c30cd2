import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PrequentialMetrics } from '../../src/engine/metrics.js';
import { MetricsTimeline } from '../../src/report/timeline.js';
import { escapeHtml, renderReportHtml, type ReplayReportData } from '../../src/report/report-html.js';

// 2012-06-21 00:00 Eastern daylight time (UTC-4), epoch ms: LOBSTER times are seconds after it.
const SESSION_MIDNIGHT_MS = Date.UTC(2012, 5, 21, 4);

interface MidTick {
  readonly ts: number;
  readonly mid: number;
}

/** fixtures/report: first 999 AAPL events at level 1 (see its README). */
function aaplMidPath(): MidTick[] {
  const text = readFileSync(new URL('../../fixtures/report/aapl-2012-06-21-level1-first999.csv', import.meta.url), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [seconds, askPrice, , bidPrice] = line.split(',').map(Number);
      return { ts: SESSION_MIDNIGHT_MS + seconds * 1000, mid: (askPrice + bidPrice) / 2 / 10_000 };
    });
}

const MODELS = ['momentum', 'coin', 'silent'];

/**
 * A small next-move replay over the real mid path: at each mid change the prediction made
 * at the previous change is scored (down = 0, up = 1), then a new one is made. "momentum"
 * bets the last move repeats, "coin" says 50/50, "silent" never predicts.
 */
function replayReport(symbol = 'AAPL', modelNames: readonly string[] = MODELS): ReplayReportData {
  const ticks = aaplMidPath();
  const timeline = new MetricsTimeline({ models: modelNames, classes: 2, maxPoints: 100 });
  const metrics = modelNames.map(() => new PrequentialMetrics(2, [50]));
  const pending = new Float64Array(4); // [momentum down, up, coin down, up]
  let havePending = false;
  let previousMid = ticks[0].mid;
  for (const { ts, mid } of ticks) {
    timeline.onMid(ts, mid);
    if (mid === previousMid) continue;
    const label = mid > previousMid ? 1 : 0;
    previousMid = mid;
    if (havePending) {
      for (let m = 0; m < 2; m++) {
        metrics[m].record(pending, m * 2, label);
        timeline.onScored(m, ts, pending, m * 2, label, metrics[m]);
      }
    }
    pending.set(label === 1 ? [0.3, 0.7, 0.5, 0.5] : [0.7, 0.3, 0.5, 0.5]);
    havePending = true;
  }
  return {
    meta: {
      files: ['fixtures/report/aapl-2012-06-21-level1-first999.csv'],
      symbol,
      source: 'lobster',
      target: 'next-move',
      classNames: ['down', 'up'],
      generatedAt: '2024-01-01T00:00:00.000Z',
    },
    counts: { eventsRead: 1001, accepted: 999, rejected: { crossed_book: 1, schema: 1 } },
    performance: { wallSeconds: 0.5, stepLatencyUs: { p50: 12.5, p99: 80.25 } },
    models: modelNames.map((name, m) => ({ name, summary: metrics[m].summary(), rolling: metrics[m].rolling() })),
    timeline: timeline.toData(),
  };
}

const VOID_ELEMENTS = new Set(['meta', 'link', 'br', 'hr', 'img', 'input']);

/** A simple well-formedness check: every tag closes in order and attribute quotes pair up. */
function unbalancedTags(page: string): string[] {
  const body = page.replace(/<!doctype html>/i, '').replace(/<style>[\s\S]*?<\/style>/, '<style></style>');
  const problems: string[] = [];
  const open: string[] = [];
  for (const match of body.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^<>]*)>/g)) {
    const [tag, closing, rawName, attributes] = match;
    const name = rawName.toLowerCase();
    if ((attributes.match(/"/g)?.length ?? 0) % 2 !== 0) problems.push(`odd quotes in ${tag}`);
    if (closing) {
      const expected = open.pop();
      if (expected !== name) problems.push(`</${name}> closes <${expected}>`);
    } else if (!attributes.endsWith('/') && !VOID_ELEMENTS.has(name)) {
      open.push(name);
    }
  }
  if (/<(?![a-zA-Z/])/.test(body.replace(/<(\/?)([a-zA-Z][\w-]*)([^<>]*)>/g, ''))) problems.push('stray <');
  return [...problems, ...open.map((name) => `<${name}> never closed`)];
}

function svgs(page: string): Map<string, string> {
  const charts = new Map<string, string>();
  for (const match of page.matchAll(/<svg [^>]*aria-label="([^"]*)"[\s\S]*?<\/svg>/g)) charts.set(match[1], match[0]);
  return charts;
}

function polylinePointCounts(svg: string): number[] {
  return [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1].split(' ').length);
}

function attributeValues(page: string): string[] {
  return [...page.matchAll(/\s[\w-]+="([^"]*)"/g)].map((m) => m[1]);
}

describe('renderReportHtml on a replay of real AAPL mid prices', () => {
  const report = replayReport();
  const page = renderReportHtml(report);

  it('is well formed and self-contained', () => {
    expect(unbalancedTags(page)).toEqual([]);
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page).not.toMatch(/<script|<link|<img|\ssrc=|\shref=|url\(|@import|https?:/i);
  });

  it('draws one SVG per chart with one polyline per model that has points', () => {
    const charts = svgs(page);
    expect([...charts.keys()]).toEqual(['rolling accuracy', 'cumulative log-loss', 'reliability diagram', 'mid price']);
    const [momentum, coin] = report.timeline.models;
    expect(momentum.ts.length).toBeGreaterThan(10);
    // "silent" has no points: no line, but a legend entry saying so.
    expect(polylinePointCounts(charts.get('rolling accuracy')!)).toEqual([momentum.ts.length, coin.ts.length]);
    expect(polylinePointCounts(charts.get('cumulative log-loss')!)).toEqual([momentum.ts.length, coin.ts.length]);
    expect(charts.get('rolling accuracy')).toContain('silent (no scored predictions)');
    expect(polylinePointCounts(charts.get('mid price')!)).toEqual([report.timeline.mid.ts.length]);
    // Momentum predicts only 0.3 or 0.7 and coin only 0.5: two and one non-empty bins.
    const reliability = charts.get('reliability diagram')!;
    expect(polylinePointCounts(reliability)).toEqual([2, 1]);
    expect(reliability.match(/class="diagonal"/g)).toHaveLength(1);
    expect(page).toMatch(/<th scope="row">momentum<\/th>(<td class="num">[\d,]+<\/td>){10}<\/tr>/);
  });

  it('states the header facts and highlights the best value per column', () => {
    expect(page).toContain('<dt>events read</dt><dd>1,001</dd>');
    expect(page).toContain('<dt>events/s</dt><dd>2002</dd>');
    expect(page).toContain('p50 12.5 µs · p99 80.3 µs');
    expect(page).toMatch(/<th scope="row">crossed_book<\/th><td class="num">1<\/td>/);
    const [momentum, coin] = report.models.map((m) => m.summary);
    // On this excerpt a mid move is repeated 56% of the time: momentum wins on accuracy, but its
    // 0.7 confidence is too much for a 56% edge, so the coin wins on log-loss and Brier.
    expect(momentum.accuracy!).toBeCloseTo(0.5559, 3);
    expect(momentum.logLoss!).toBeGreaterThan(Math.log(2));
    expect(coin.logLoss!).toBeCloseTo(Math.log(2), 12);
    const rowOf = (name: string): string => page.match(new RegExp(`<tr><th scope="row"><span class="swatch"[^>]*></span>${name}</th>.*?</tr>`))![0];
    const bestCells = (name: string): string[] => [...rowOf(name).matchAll(/<td class="num best">([^<]*)<\/td>/g)].map((m) => m[1]);
    expect(bestCells('coin')).toContain(coin.logLoss!.toFixed(4));
    expect(bestCells('coin')).toContain(coin.brier!.toFixed(4));
    expect(bestCells('momentum')).toContain(momentum.accuracy!.toFixed(4));
    expect(bestCells('momentum')).not.toContain(momentum.logLoss!.toFixed(4));
    expect(rowOf('silent')).not.toContain('best');
    expect(rowOf('silent')).toContain('<td class="num">—</td>');
  });

  it('draws every confusion matrix as a shaded table', () => {
    const tables = [...page.matchAll(/<figure class="confusion">[\s\S]*?<\/figure>/g)].map((m) => m[0]);
    expect(tables).toHaveLength(3);
    const momentum = report.models[0].summary.confusion;
    const downRow = momentum[0][0] + momentum[0][1];
    expect(tables[0]).toContain(`background:rgba(37,99,235,${(momentum[0][0] / downRow).toFixed(3)})`);
    expect(tables[0]).toContain(`>${momentum[1][1]}<small>`);
  });
});

describe('renderReportHtml on awkward input', () => {
  it('escapes a hostile symbol, model name and file name', () => {
    const report = replayReport('<script>alert(1)</script>', ['"><img src=x onerror=alert(1)>', 'coin', 'silent']);
    const page = renderReportHtml({ ...report, meta: { ...report.meta, files: ["a'&<b>.csv"] } });
    expect(page).not.toMatch(/<script|<img/);
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(page).toContain('a&#39;&amp;&lt;b&gt;.csv');
    expect(unbalancedTags(page)).toEqual([]);
    expect(escapeHtml(`<&>"'`)).toBe('&lt;&amp;&gt;&quot;&#39;');
  });

  it('handles a model with no scores and single-point series without NaN anywhere', () => {
    const timeline = new MetricsTimeline({ models: ['rtrl', 'majority'], classes: 3 });
    const rtrl = new PrequentialMetrics(3);
    const probs = [0.2, 0.3, 0.5];
    rtrl.record(probs, 0, 2);
    timeline.onScored(0, 1_700_000_000_000, probs, 0, 2, rtrl);
    timeline.onMid(1_700_000_000_000, 42_000.5);
    const page = renderReportHtml({
      meta: { files: [], symbol: 'BTCUSDT', target: 'horizon:10', classNames: ['down', 'flat', 'up'] },
      counts: { eventsRead: 1, accepted: 1, rejected: {} },
      performance: { wallSeconds: 0, stepLatencyUs: null },
      models: [
        { name: 'rtrl', summary: rtrl.summary() },
        { name: 'majority', summary: new PrequentialMetrics(3).summary() },
      ],
      timeline: timeline.toData(),
    });
    expect(unbalancedTags(page)).toEqual([]);
    expect(attributeValues(page).filter((value) => /NaN|Infinity|undefined/.test(value))).toEqual([]);
    expect(page).not.toMatch(/NaN|Infinity/);
    const charts = svgs(page);
    expect(polylinePointCounts(charts.get('rolling accuracy')!)).toEqual([1]);
    expect(polylinePointCounts(charts.get('mid price')!)).toEqual([1]);
    expect(page.match(/class="lone-point"/g)).toHaveLength(4); // accuracy, log-loss, reliability (one bin), mid
    expect(page).toContain('<dt>events/s</dt><dd>—</dd>');
    expect(page).toContain('not measured');
  });

  it('renders a replay where nothing was scored at all', () => {
    const timeline = new MetricsTimeline({ models: ['rtrl'], classes: 2 });
    const page = renderReportHtml({
      meta: { files: ['x.csv'], symbol: 'X', target: 'next-move', classNames: ['down', 'up'] },
      counts: { eventsRead: 0, accepted: 0, rejected: {} },
      performance: { wallSeconds: 1, stepLatencyUs: null },
      models: [{ name: 'rtrl', summary: new PrequentialMetrics(2).summary() }],
      timeline: timeline.toData(),
    });
    expect(unbalancedTags(page)).toEqual([]);
    expect(page).not.toMatch(/NaN|Infinity/);
    expect(svgs(page).size).toBe(4);
    expect(page.match(/<polyline/g)).toBeNull();
  });
});
