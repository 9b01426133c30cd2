// One self-contained HTML page for a finished replay: header facts, the model table and
// inline SVG charts drawn here (no chart library, no fonts, scripts or images fetched).
// Every interpolated value goes through the `html` tag, which escapes anything that is
// not already markup, so a hostile symbol or file name cannot inject tags.
import type { RejectReason } from '../domain/types.js';
import type { MetricsSummary, RollingMetrics } from '../engine/metrics.js';
import type { TimelineData } from './timeline.js';

/** What the engine hands over at the end of a replay. */
export interface ReplayReportData {
  readonly meta: {
    /** Defaults to "lob-rtrl replay". */
    readonly title?: string;
    readonly files: readonly string[];
    readonly symbol: string;
    /** File format or venue the files were read as, e.g. "lobster". */
    readonly source?: string;
    /** Label target, e.g. "next-move" or "horizon:10". */
    readonly target: string;
    /** Class names in class-index order, e.g. ["down", "up"]. */
    readonly classNames: readonly string[];
    /** ISO time the report was made; passed in because core code never reads the clock. */
    readonly generatedAt?: string;
  };
  readonly counts: {
    readonly eventsRead: number;
    readonly accepted: number;
    readonly rejected: Readonly<Partial<Record<RejectReason, number>>>;
    readonly disconnects?: number;
  };
  readonly performance: {
    readonly wallSeconds: number;
    /** Per-tick engine step latency in microseconds; null when it was not measured. */
    readonly stepLatencyUs: { readonly p50: number; readonly p99: number } | null;
  };
  /** In the order of `timeline.models`. */
  readonly models: ReadonlyArray<{
    readonly name: string;
    readonly summary: MetricsSummary;
    readonly rolling?: readonly RollingMetrics[];
  }>;
  readonly timeline: TimelineData;
}

// ---------------------------------------------------------------------------------------
// Escaping

class Markup {
  constructor(readonly text: string) {}
}

type Fragment = Markup | string | number | null | undefined | false | readonly Fragment[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

function fragmentText(value: Fragment): string {
  if (value instanceof Markup) return value.text;
  if (Array.isArray(value)) return value.map(fragmentText).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

function html(strings: TemplateStringsArray, ...values: Fragment[]): Markup {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += fragmentText(values[i]) + strings[i + 1];
  return new Markup(out);
}

// ---------------------------------------------------------------------------------------
// Number formatting

const DASH = '—';

function formatFixed(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined || !Number.isFinite(value) ? DASH : value.toFixed(digits);
}

function formatCount(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : DASH;
}

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return DASH;
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e4) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

/** SVG coordinate; inputs are finite by construction, the guard keeps NaN out of attributes regardless. */
function px(value: number): string {
  return Number.isFinite(value) ? value.toFixed(1) : '0';
}

// ---------------------------------------------------------------------------------------
// Axes

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];

const colorOf = (index: number): string => PALETTE[index % PALETTE.length];

interface Scale {
  readonly lo: number;
  readonly hi: number;
  readonly ticks: number[];
  readonly label: (value: number) => string;
}

/** 1, 2 or 5 times a power of ten, near span / count. */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1.5 ? 1 : fraction <= 3.5 ? 2 : fraction <= 7.5 ? 5 : 10) * power;
}

/** A value axis whose ends land on ticks. `bounds` clamps (accuracy lives in [0, 1]). */
function valueScale(values: readonly number[], bounds?: readonly [number, number]): Scale {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.01 || 0.5;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, 5);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  if (bounds) {
    lo = Math.max(bounds[0], lo);
    hi = Math.min(bounds[1], hi);
  }
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(k * step || 0); // `|| 0` turns -0 into 0
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return { lo, hi, ticks, label: (value) => value.toFixed(Math.min(digits, 8)) };
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIME_STEPS = [
  1,
  2,
  5,
  10,
  20,
  50,
  100,
  200,
  500,
  SECOND,
  2 * SECOND,
  5 * SECOND,
  10 * SECOND,
  15 * SECOND,
  30 * SECOND,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  30 * DAY,
];

/** A UTC time axis over epoch milliseconds, ticks on round clock times. */
function timeScale(values: readonly number[]): Scale {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!(hi > lo)) {
    lo -= SECOND;
    hi += SECOND;
  }
  const step = TIME_STEPS.find((candidate) => (hi - lo) / candidate <= 7) ?? niceStep(hi - lo, 6);
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  const iso = (value: number): string => new Date(value).toISOString();
  const label =
    step >= DAY
      ? (value: number) => iso(value).slice(0, 10)
      : step >= MINUTE
        ? (value: number) => iso(value).slice(11, 16)
        : step >= SECOND
          ? (value: number) => iso(value).slice(11, 19)
          : (value: number) => iso(value).slice(11, 23);
  return { lo, hi, ticks, label };
}

// ---------------------------------------------------------------------------------------
// Charts

const WIDTH = 760;
const HEIGHT = 300;
const MARGIN = { left: 68, right: 20, top: 34, bottom: 44 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;

interface Series {
  readonly name: string;
  readonly color: string;
  readonly xs: readonly number[];
  readonly ys: readonly number[];
}

/** Drops points with a missing coordinate (e.g. the accuracy before any score). */
function finitePoints(series: Series): Series {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < Math.min(series.xs.length, series.ys.length); i++) {
    if (Number.isFinite(series.xs[i]) && Number.isFinite(series.ys[i])) {
      xs.push(series.xs[i]);
      ys.push(series.ys[i]);
    }
  }
  return { ...series, xs, ys };
}

function axes(x: Scale, y: Scale, xTitle: string, yTitle: string, toX: (v: number) => number, toY: (v: number) => number): Markup {
  const bottom = MARGIN.top + PLOT_H;
  return html`<g class="axes">
<line class="axis" x1="${px(MARGIN.left)}" y1="${px(bottom)}" x2="${px(MARGIN.left + PLOT_W)}" y2="${px(bottom)}"/>
<line class="axis" x1="${px(MARGIN.left)}" y1="${px(MARGIN.top)}" x2="${px(MARGIN.left)}" y2="${px(bottom)}"/>
${x.ticks.map(
  (
    tick,
  ) => html`<line class="tick" x1="${px(toX(tick))}" y1="${px(bottom)}" x2="${px(toX(tick))}" y2="${px(bottom + 5)}"/><text class="tick-label" x="${px(toX(tick))}" y="${px(bottom + 18)}" text-anchor="middle">${x.label(tick)}</text>
`,
)}${y.ticks.map(
    (
      tick,
    ) => html`<line class="grid" x1="${px(MARGIN.left)}" y1="${px(toY(tick))}" x2="${px(MARGIN.left + PLOT_W)}" y2="${px(toY(tick))}"/><text class="tick-label" x="${px(MARGIN.left - 8)}" y="${px(toY(tick) + 4)}" text-anchor="end">${y.label(tick)}</text>
`,
  )}<text class="axis-title" x="${px(MARGIN.left + PLOT_W / 2)}" y="${px(HEIGHT - 6)}" text-anchor="middle">${xTitle}</text>
<text class="axis-title" transform="translate(14 ${px(MARGIN.top + PLOT_H / 2)}) rotate(-90)" text-anchor="middle">${yTitle}</text>
</g>`;
}

function legend(entries: ReadonlyArray<{ name: string; color: string; note?: string }>): Markup {
  let x = MARGIN.left;
  const items = entries.map((entry) => {
    const text = entry.note ? `${entry.name} ${entry.note}` : entry.name;
    const item = html`<g class="legend-item"><line x1="${px(x)}" y1="14" x2="${px(x + 18)}" y2="14" stroke="${entry.color}" stroke-width="3"/><text x="${px(x + 24)}" y="18">${text}</text></g>`;
    x += 40 + text.length * 7.8;
    return item;
  });
  return html`<g class="legend">${items}</g>`;
}

function polyline(series: Series, toX: (v: number) => number, toY: (v: number) => number): Markup {
  const points = series.xs.map((x, i) => `${px(toX(x))},${px(toY(series.ys[i]))}`).join(' ');
  // A lone point draws nothing as a polyline, so it also gets a dot.
  const dot = series.xs.length === 1 ? html`<circle class="lone-point" cx="${px(toX(series.xs[0]))}" cy="${px(toY(series.ys[0]))}" r="3" fill="${series.color}"/>` : null;
  return html`<polyline class="series" data-series="${series.name}" points="${points}" fill="none" stroke="${series.color}" stroke-width="1.5"/>${dot}`;
}

/** Lines over time; one polyline per series that has at least one finite point. */
function timeChart(options: { readonly label: string; readonly series: readonly Series[]; readonly yTitle: string; readonly yBounds?: readonly [number, number] }): Markup {
  const drawable = options.series.map(finitePoints);
  const withPoints = drawable.filter((s) => s.xs.length > 0);
  const notes = drawable.map((s) => ({ name: s.name, color: s.color, note: s.xs.length ? undefined : '(no scored predictions)' }));
  if (withPoints.length === 0) {
    return html`<svg class="chart" role="img" aria-label="${options.label}" viewBox="0 0 ${WIDTH} 60" width="${WIDTH}" height="60">${legend(notes)}<text class="empty" x="${px(MARGIN.left)}" y="46">no data</text></svg>`;
  }
  const x = timeScale(withPoints.flatMap((s) => s.xs));
  const y = valueScale(
    withPoints.flatMap((s) => s.ys),
    options.yBounds,
  );
  const toX = (v: number): number => MARGIN.left + ((v - x.lo) / (x.hi - x.lo)) * PLOT_W;
  const toY = (v: number): number => MARGIN.top + PLOT_H - ((v - y.lo) / (y.hi - y.lo)) * PLOT_H;
  return html`<svg class="chart" role="img" aria-label="${options.label}" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}">
${axes(x, y, 'time (UTC)', options.yTitle, toX, toY)}
${legend(notes)}
${withPoints.map((s) => polyline(s, toX, toY))}
</svg>`;
}

function reliabilityChart(timeline: TimelineData): Markup {
  const size = 300;
  const left = MARGIN.left;
  const top = 20 + MARGIN.top;
  const toX = (p: number): number => left + p * size;
  const toY = (p: number): number => top + size - p * size;
  const unit: Scale = { lo: 0, hi: 1, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1], label: (v) => v.toFixed(1) };
  const maxCount = Math.max(1, ...timeline.models.flatMap((m) => m.calibration.map((bin) => bin.count)));
  const modelMarks = timeline.models.map((model, m) => {
    const bins = model.calibration.filter((bin) => bin.count > 0 && bin.meanPredicted !== null && bin.observedFrequency !== null);
    if (bins.length === 0) return null;
    const color = colorOf(m);
    const series: Series = {
      name: model.name,
      color,
      xs: bins.map((bin) => bin.meanPredicted as number),
      ys: bins.map((bin) => bin.observedFrequency as number),
    };
    const dots = bins.map(
      (bin) =>
        html`<circle cx="${px(toX(bin.meanPredicted as number))}" cy="${px(toY(bin.observedFrequency as number))}" r="${px(2 + 5 * Math.sqrt(bin.count / maxCount))}" fill="${color}" fill-opacity="0.35" stroke="${color}"><title>${model.name}: P(up) ${bin.lower.toFixed(1)}–${bin.upper.toFixed(1)}, n=${formatCount(bin.count)}, predicted ${formatFixed(bin.meanPredicted, 3)}, observed ${formatFixed(bin.observedFrequency, 3)}</title></circle>`,
    );
    return html`${polyline(series, toX, toY)}${dots}`;
  });
  const bottom = top + size;
  const ticks = unit.ticks.map(
    (
      t,
    ) => html`<line class="grid" x1="${px(left)}" y1="${px(toY(t))}" x2="${px(left + size)}" y2="${px(toY(t))}"/><text class="tick-label" x="${px(left - 8)}" y="${px(toY(t) + 4)}" text-anchor="end">${unit.label(t)}</text><text class="tick-label" x="${px(toX(t))}" y="${px(bottom + 18)}" text-anchor="middle">${unit.label(t)}</text>
`,
  );
  const height = bottom + MARGIN.bottom;
  return html`<svg class="chart" role="img" aria-label="reliability diagram" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
${legend(timeline.models.map((model, m) => ({ name: model.name, color: colorOf(m), note: model.calibration.some((bin) => bin.count > 0) ? undefined : '(no scored predictions)' })))}
<g class="axes">${ticks}<line class="axis" x1="${px(left)}" y1="${px(bottom)}" x2="${px(left + size)}" y2="${px(bottom)}"/><line class="axis" x1="${px(left)}" y1="${px(top)}" x2="${px(left)}" y2="${px(bottom)}"/>
<text class="axis-title" x="${px(left + size / 2)}" y="${px(height - 6)}" text-anchor="middle">mean predicted P(up)</text>
<text class="axis-title" transform="translate(14 ${px(top + size / 2)}) rotate(-90)" text-anchor="middle">observed frequency of up</text></g>
<line class="diagonal" x1="${px(toX(0))}" y1="${px(toY(0))}" x2="${px(toX(1))}" y2="${px(toY(1))}"/>
${modelMarks}
${binCountBars(timeline, left + size + 90, top, WIDTH - MARGIN.right - (left + size + 90), size, maxCount)}
</svg>`;
}

/** Predictions per P(up) bin, one bar per model in each bin, beside the reliability plot. */
function binCountBars(timeline: TimelineData, left: number, top: number, width: number, height: number, maxCount: number): Markup {
  const bins = timeline.models[0]?.calibration.length ?? 0;
  if (bins === 0) return html``;
  const y = valueScale([0, maxCount]);
  const toY = (count: number): number => top + height - (count / y.hi) * height;
  const binWidth = width / bins;
  const barWidth = (binWidth * 0.8) / Math.max(1, timeline.models.length);
  const bars = timeline.models.map((model, m) =>
    model.calibration.map((bin, b) =>
      bin.count > 0
        ? html`<rect class="bin-bar" x="${px(left + b * binWidth + binWidth * 0.1 + m * barWidth)}" y="${px(toY(bin.count))}" width="${px(barWidth)}" height="${px(top + height - toY(bin.count))}" fill="${colorOf(m)}"><title>${model.name}: ${formatCount(bin.count)} predictions with P(up) in ${bin.lower.toFixed(1)}–${bin.upper.toFixed(1)}</title></rect>`
        : null,
    ),
  );
  const bottom = top + height;
  return html`<g class="bin-counts">
${y.ticks.map((tick) => html`<line class="grid" x1="${px(left)}" y1="${px(toY(tick))}" x2="${px(left + width)}" y2="${px(toY(tick))}"/><text class="tick-label" x="${px(left - 6)}" y="${px(toY(tick) + 4)}" text-anchor="end">${formatCount(tick)}</text>`)}
${[0, bins / 2, bins].map((b) => html`<text class="tick-label" x="${px(left + b * binWidth)}" y="${px(bottom + 18)}" text-anchor="middle">${(b / bins).toFixed(1)}</text>`)}
<line class="axis" x1="${px(left)}" y1="${px(bottom)}" x2="${px(left + width)}" y2="${px(bottom)}"/>
${bars}
<text class="axis-title" x="${px(left + width / 2)}" y="${px(bottom + 38)}" text-anchor="middle">predictions per P(up) bin</text>
</g>`;
}

// ---------------------------------------------------------------------------------------
// Tables

type Better = 'higher' | 'lower';

/** Indices of the best finite values (all of them on a tie). */
function bestIndices(values: ReadonlyArray<number | null | undefined>, better: Better): Set<number> {
  let best: number | null = null;
  for (const value of values) {
    if (value === null || value === undefined || !Number.isFinite(value)) continue;
    if (best === null || (better === 'higher' ? value > best : value < best)) best = value;
  }
  const winners = new Set<number>();
  values.forEach((value, i) => {
    if (best !== null && value === best) winners.add(i);
  });
  return winners;
}

function metricsTable(report: ReplayReportData): Markup {
  const models = report.models;
  const windows = models.find((m) => m.rolling?.length)?.rolling?.map((r) => r.window) ?? [];
  const columns: Array<{ title: string; better?: Better; digits: number; value: (i: number) => number | null | undefined }> = [
    { title: 'n scored', digits: 0, value: (i) => models[i].summary.n },
    { title: 'accuracy', better: 'higher', digits: 4, value: (i) => models[i].summary.accuracy },
    { title: 'macro-F1', better: 'higher', digits: 4, value: (i) => models[i].summary.macroF1 },
    { title: 'log-loss', better: 'lower', digits: 4, value: (i) => models[i].summary.logLoss },
    { title: 'Brier', better: 'lower', digits: 4, value: (i) => models[i].summary.brier },
    ...windows.map((window, w) => ({
      title: `accuracy, last ${formatCount(window)}`,
      better: 'higher' as Better,
      digits: 4,
      value: (i: number) => models[i].rolling?.[w]?.accuracy,
    })),
  ];
  const winners = columns.map((column) =>
    column.better
      ? bestIndices(
          models.map((_, i) => column.value(i)),
          column.better,
        )
      : new Set<number>(),
  );
  const rows = models.map(
    (model, i) => html`<tr><th scope="row"><span class="swatch" style="background:${colorOf(i)}"></span>${model.name}</th>${columns.map((column, c) => {
      const value = column.value(i);
      const text = column.digits === 0 && typeof value === 'number' ? formatCount(value) : formatFixed(value, column.digits);
      return html`<td class="${winners[c].has(i) ? 'num best' : 'num'}">${text}</td>`;
    })}</tr>
`,
  );
  return html`<table class="metrics">
<thead><tr><th scope="col">model</th>${columns.map((column) => html`<th scope="col">${column.title}${column.better ? (column.better === 'higher' ? ' ↑' : ' ↓') : ''}</th>`)}</tr></thead>
<tbody>
${rows}</tbody>
</table>`;
}

function confusionTable(name: string, color: string, summary: MetricsSummary, classNames: readonly string[]): Markup {
  const nameOf = (c: number): string => classNames[c] ?? `class ${c}`;
  const rows = summary.confusion.map((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    return html`<tr><th scope="row">${nameOf(t)}</th>${row.map((count, p) => {
      const share = total ? count / total : 0;
      const style = `background:rgba(37,99,235,${share.toFixed(3)});color:${share > 0.55 ? '#fff' : '#111'}`;
      return html`<td class="num" style="${style}" title="${`${formatCount(count)} of ${formatCount(total)} true ${nameOf(t)} predicted ${nameOf(p)}`}">${formatCount(count)}<small>${total ? ` ${(share * 100).toFixed(0)}%` : ''}</small></td>`;
    })}</tr>`;
  });
  return html`<figure class="confusion"><figcaption><span class="swatch" style="background:${color}"></span>${name} <small>(n=${formatCount(summary.n)})</small></figcaption>
<table><thead><tr><th scope="col">true ↓ / predicted →</th>${summary.confusion.map((_, p) => html`<th scope="col">${nameOf(p)}</th>`)}</tr></thead>
<tbody>${rows}</tbody></table></figure>`;
}

function binCountsTable(timeline: TimelineData): Markup {
  const bins = timeline.models[0]?.calibration ?? [];
  return html`<table class="bins"><thead><tr><th scope="col">P(up) bin</th>${bins.map((bin) => html`<th scope="col">${bin.lower.toFixed(1)}–${bin.upper.toFixed(1)}</th>`)}</tr></thead>
<tbody>${timeline.models.map(
    (model) => html`<tr><th scope="row">${model.name}</th>${model.calibration.map((bin) => html`<td class="num">${formatCount(bin.count)}</td>`)}</tr>`,
  )}</tbody></table>`;
}

function factsList(report: ReplayReportData): Markup {
  const { meta, counts, performance } = report;
  const rejectedEntries = Object.entries(counts.rejected)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number' && entry[1] > 0)
    .sort((a, b) => b[1] - a[1]);
  const rejectedTotal = rejectedEntries.reduce((sum, [, n]) => sum + n, 0);
  const eventsPerSecond = performance.wallSeconds > 0 ? counts.eventsRead / performance.wallSeconds : Number.NaN;
  const latency = performance.stepLatencyUs;
  return html`<dl class="facts">
<dt>files</dt><dd>${meta.files.length ? html`<ul>${meta.files.map((file) => html`<li><code>${file}</code></li>`)}</ul>` : DASH}</dd>
<dt>symbol</dt><dd>${meta.symbol}</dd>
${meta.source ? html`<dt>source</dt><dd>${meta.source}</dd>` : null}
<dt>target</dt><dd>${meta.target} <small>(${meta.classNames.join(' / ')})</small></dd>
<dt>events read</dt><dd>${formatCount(counts.eventsRead)}</dd>
<dt>accepted</dt><dd>${formatCount(counts.accepted)}</dd>
<dt>rejected</dt><dd>${formatCount(rejectedTotal)}${
    rejectedEntries.length
      ? html`<table class="reasons"><tbody>${rejectedEntries.map(([reason, n]) => html`<tr><th scope="row">${reason}</th><td class="num">${formatCount(n)}</td></tr>`)}</tbody></table>`
      : null
  }</dd>
${counts.disconnects !== undefined ? html`<dt>disconnects</dt><dd>${formatCount(counts.disconnects)}</dd>` : null}
<dt>wall time</dt><dd>${formatFixed(performance.wallSeconds, 2)} s</dd>
<dt>events/s</dt><dd>${formatRate(eventsPerSecond)}</dd>
<dt>step latency</dt><dd>${latency ? `p50 ${formatFixed(latency.p50, 1)} µs · p99 ${formatFixed(latency.p99, 1)} µs` : 'not measured'}</dd>
${meta.generatedAt ? html`<dt>generated</dt><dd>${meta.generatedAt}</dd>` : null}
</dl>`;
}

const STYLE = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111; background: #fafafa; margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.note { color: #555; margin: 4px 0 8px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; }
dl.facts ul { margin: 0; padding-left: 18px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; background: #dcfce7; }
table.reasons { margin-top: 4px; font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
svg.chart { background: #fff; border: 1px solid #ddd; max-width: 100%; height: auto; font: 11px system-ui, sans-serif; }
svg .axis { stroke: #333; }
svg .tick { stroke: #333; }
svg .grid { stroke: #eee; }
svg .diagonal { stroke: #888; stroke-dasharray: 4 4; }
svg .tick-label { fill: #444; }
svg .axis-title { fill: #222; font-size: 12px; }
svg .legend-item text { fill: #222; font-size: 12px; }
svg .empty { fill: #888; }
.confusions { display: flex; flex-wrap: wrap; gap: 16px; }
figure.confusion { margin: 0; }
figure.confusion figcaption { margin-bottom: 4px; font-weight: 600; }
table.bins { margin-top: 8px; font-size: 12px; }
`;

// ---------------------------------------------------------------------------------------

export function renderReportHtml(report: ReplayReportData): string {
  const { meta, timeline } = report;
  const title = meta.title ?? 'lob-rtrl replay';
  const seriesOf = (pick: (m: TimelineData['models'][number]) => readonly number[]): Series[] =>
    timeline.models.map((model, m) => ({ name: model.name, color: colorOf(m), xs: model.ts, ys: pick(model) }));
  const rollingTitle = timeline.rollingWindow ? `accuracy, last ${formatCount(timeline.rollingWindow)}` : 'cumulative accuracy';
  const upName = meta.classNames[timeline.upClass] ?? 'up';

  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}: ${meta.symbol} ${meta.target}</title>
<style>${new Markup(STYLE)}</style>
</head>
<body>
<header>
<h1>${title}: ${meta.symbol} · ${meta.target}</h1>
${factsList(report)}
</header>
<section id="models">
<h2>Models</h2>
<p class="note">Prequential scores: each prediction is scored when its label resolves, before the model learns from that label. Best value per column in bold.</p>
${metricsTable(report)}
</section>
<section id="rolling-accuracy">
<h2>Rolling ${rollingTitle}</h2>
${timeChart({ label: 'rolling accuracy', series: seriesOf((m) => m.rollingAccuracy), yTitle: rollingTitle, yBounds: [0, 1] })}
</section>
<section id="log-loss">
<h2>Cumulative log-loss</h2>
${timeChart({ label: 'cumulative log-loss', series: seriesOf((m) => m.cumulativeLogLoss), yTitle: 'mean log-loss (nats)' })}
</section>
<section id="reliability">
<h2>Reliability of P(${upName})</h2>
<p class="note">Each dot is one bin of predicted probability (${timeline.models[0]?.calibration.length ?? 0} equal bins); its area grows with the number of predictions in it. A calibrated model lies on the dashed diagonal.</p>
${reliabilityChart(timeline)}
${binCountsTable(timeline)}
</section>
<section id="confusion">
<h2>Confusion matrices</h2>
<div class="confusions">${report.models.map((model, m) => confusionTable(model.name, colorOf(m), model.summary, meta.classNames))}</div>
</section>
<section id="mid-price">
<h2>Mid price</h2>
${timeChart({ label: 'mid price', series: [{ name: meta.symbol, color: '#111', xs: timeline.mid.ts, ys: timeline.mid.price }], yTitle: 'mid price' })}
</section>
</body>
</html>
`;
  return page.text;
}
