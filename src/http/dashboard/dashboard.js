// The live dashboard's client: one WebSocket on /v1/stream for predictions, two polls (status
// every 2 s, the selected stream's metrics every 3 s), uPlot for the charts. Plain JS served as-is, so
// the service needs no browser build step.
//
// Memory stays flat over hours: the series live in fixed-capacity rings (series.js).
/* global uPlot */
import { PredictionWindow } from './series.js';

const WINDOW = 2000;
const STATUS_POLL_MS = 2000;
const METRICS_POLL_MS = 3000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const MODEL_COLOURS = ['#4cc9f0', '#f72585', '#ffd166', '#8d99ae', '#80ed99', '#c77dff', '#ff9f1c', '#e0e1dd'];
const RIGHT_COLOUR = '#3ddc84';
const WRONG_COLOUR = '#ff4d4f';

const $ = (id) => document.getElementById(id);

const state = {
  stream: null,
  models: [],
  target: null,
  window: null,
  socket: null,
  connectAttempt: 0,
  reconnects: 0,
  everConnected: false,
  /** Live frames held while the backfill request is in flight, so none is lost or doubled. */
  heldFrames: null,
  conflatedFrames: 0,
  lastPrediction: null,
  midChart: null,
  probChart: null,
  renderQueued: false,
};

function formatPrice(value) {
  return value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

function formatMicros(value) {
  if (value === null || value === undefined) return '—';
  return value >= 100 ? Math.round(value).toLocaleString() : value.toFixed(1);
}

function percent(value) {
  return value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)}%`;
}

function setConnection(kind, text) {
  const badge = $('connection');
  badge.dataset.state = kind;
  badge.className = `badge badge-${kind === 'live' ? 'ok' : kind === 'reconnecting' ? 'bad' : 'wait'}`;
  badge.textContent = text;
}

// ---- charts -----------------------------------------------------------------------------

const axisStyle = { stroke: '#9aa5b1', grid: { stroke: 'rgba(255,255,255,0.06)', width: 1 }, ticks: { stroke: 'rgba(255,255,255,0.12)', width: 1 } };

function chartWidth(element) {
  return Math.max(320, element.clientWidth);
}

/** A dashed line at P(up) = 0.5: above it the model calls up. */
function drawHalfLine(chart) {
  const ctx = chart.ctx;
  const y = Math.round(chart.valToPos(0.5, 'y', true));
  ctx.save();
  ctx.strokeStyle = 'rgba(255,255,255,0.25)';
  ctx.setLineDash([6, 6]);
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(chart.bbox.left, y);
  ctx.lineTo(chart.bbox.left + chart.bbox.width, y);
  ctx.stroke();
  ctx.restore();
}

function createCharts(models) {
  for (const chart of [state.midChart, state.probChart]) chart?.destroy();
  const midElement = $('mid-chart');
  const probElement = $('prob-chart');
  const cursor = { sync: { key: 'lob-rtrl' }, drag: { x: false, y: false } };
  state.midChart = new uPlot(
    {
      width: chartWidth(midElement),
      height: 240,
      cursor,
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [axisStyle, { ...axisStyle, size: 80, values: (_u, ticks) => ticks.map((v) => formatPrice(v)) }],
      series: [
        {},
        { label: 'mid', stroke: '#e9ecef', width: 1.5, points: { show: false }, paths: uPlot.paths.stepped({ align: 1 }), value: (_u, v) => (v === null ? '—' : formatPrice(v)) },
      ],
    },
    [[], []],
    midElement,
  );
  const point = (colour) => ({ show: true, size: 7, fill: colour, stroke: colour, width: 0 });
  state.probChart = new uPlot(
    {
      width: chartWidth(probElement),
      height: 260,
      cursor,
      legend: { live: true },
      scales: { x: { time: true }, y: { range: [0, 1] } },
      axes: [axisStyle, { ...axisStyle, size: 80, values: (_u, ticks) => ticks.map((v) => v.toFixed(2)) }],
      series: [
        {},
        ...models.map((model, m) => ({
          label: model,
          stroke: MODEL_COLOURS[m % MODEL_COLOURS.length],
          width: m === 0 ? 2 : 1.25,
          points: { show: false },
          value: (_u, v) => (v === null ? '—' : v.toFixed(3)),
        })),
        { label: 'right', stroke: RIGHT_COLOUR, paths: () => null, points: point(RIGHT_COLOUR), value: (_u, v) => (v === null ? '' : '✓') },
        { label: 'wrong', stroke: WRONG_COLOUR, paths: () => null, points: point(WRONG_COLOUR), value: (_u, v) => (v === null ? '' : '✗') },
      ],
      hooks: { draw: [drawHalfLine] },
    },
    [[], ...models.map(() => []), [], []],
    probElement,
  );
}

new ResizeObserver(() => {
  if (state.midChart) state.midChart.setSize({ width: chartWidth($('mid-chart')), height: 240 });
  if (state.probChart) state.probChart.setSize({ width: chartWidth($('prob-chart')), height: 260 });
}).observe(document.querySelector('.charts'));

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(render);
}

function render() {
  state.renderQueued = false;
  const ring = state.window;
  if (!ring || !state.midChart) return;
  const data = ring.views();
  state.midChart.setData(data.mid);
  state.probChart.setData(data.prob);
  $('mid-chart').dataset.points = String(data.mid[0].length);
  $('prob-chart').dataset.points = String(data.prob[0].length);

  const last = state.lastPrediction;
  if (last) {
    $('mid').textContent = formatPrice(last.mid);
    $('mid-ts').textContent = `venue time ${new Date(last.ts).toISOString().slice(11, 23)} · seq ${last.seq}`;
  }
  $('prediction-count').textContent = String(ring.size);
  $('prediction-note').textContent = `in view of ${ring.total} received${state.conflatedFrames ? ` · ${state.conflatedFrames} conflated by the server` : ''}`;
  const { right, wrong } = ring;
  $('resolved').textContent = right + wrong > 0 ? percent(right / (right + wrong)) : '—';
  $('resolved-note').textContent = `${right} right · ${wrong} wrong in view, as the engine scored them (${state.target})`;
}

// ---- predictions ------------------------------------------------------------------------

function resetSymbolView(models, target, classNames) {
  state.models = models;
  state.target = target;
  state.window = new PredictionWindow(WINDOW, models, classNames);
  state.lastPrediction = null;
  $('first-model').textContent = models[0] ?? 'first model';
  createCharts(models);
}

function applyPrediction(prediction) {
  if (prediction.stream !== state.stream) return;
  const models = prediction.models.map((m) => m.model);
  if (!state.window || models.length !== state.models.length || models.some((name, m) => name !== state.models[m])) {
    // Probabilities are keyed by class name in the target's class order.
    resetSymbolView(models, prediction.target, Object.keys(prediction.models[0].probs));
  }
  const ring = state.window;
  const time = prediction.localTs / 1000;
  // The page's time axis is the service's receive clock; anything not newer is already drawn
  // (a backfill overlapping live frames, a replayed frame after a reconnect).
  if (time < ring.lastTime || (time === ring.lastTime && prediction.seq <= ring.lastSeq)) {
    // Drawn already, but what it says about labels may be news (a backfill after a reconnect).
    if (typeof prediction.label === 'string') ring.resolveRun(prediction.seq, prediction.seq, prediction.label);
    if (prediction.resolved) for (const run of prediction.resolved) ring.resolveRun(run.fromSeq, run.toSeq, run.label);
    queueRender();
    return;
  }
  ring.push(time, prediction);
  state.lastPrediction = prediction;
  queueRender();
}

function onFrame(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type !== 'prediction') {
    if (message.type === 'error') console.warn('stream error', message.reason, message.detail);
    return;
  }
  // The server carries what the skipped predictions resolved in the frame it kept.
  if (message.conflated) state.conflatedFrames += message.conflated;
  if (state.heldFrames) state.heldFrames.push(message);
  else applyPrediction(message);
}

/** The REST path of a stream id (`venue:symbol`): the venue ends at the first colon. */
function streamPath(stream) {
  const colon = stream.indexOf(':');
  return `/v1/streams/${encodeURIComponent(stream.slice(0, colon))}/${encodeURIComponent(stream.slice(colon + 1))}`;
}

/** The recent predictions the service still holds, then whatever arrived meanwhile. */
async function backfill(symbol) {
  state.heldFrames = [];
  try {
    const response = await fetch(`${streamPath(symbol)}/predictions?limit=${WINDOW}`);
    if (response.ok && symbol === state.stream) {
      const body = await response.json();
      for (const prediction of body.predictions) {
        if (prediction.models && prediction.localTs !== undefined) applyPrediction({ ...prediction, type: 'prediction' });
      }
    }
  } catch (error) {
    console.warn('backfill failed', error);
  } finally {
    const held = state.heldFrames ?? [];
    state.heldFrames = null;
    for (const frame of held) applyPrediction(frame);
  }
}

function subscribe(symbol) {
  const socket = state.socket;
  if (!symbol || !socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ subscribe: [symbol] }));
  void backfill(symbol);
}

function selectSymbol(symbol) {
  if (symbol === state.stream) return;
  const previous = state.stream;
  state.stream = symbol;
  $('symbol-name').textContent = symbol;
  $('symbol-select').value = symbol;
  history.replaceState(null, '', `#${encodeURIComponent(symbol)}`);
  state.window = null;
  state.models = [];
  if (previous && state.socket?.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify({ unsubscribe: [previous] }));
  subscribe(symbol);
  void pollMetrics();
}

// ---- the connection ---------------------------------------------------------------------

function connect() {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/stream`);
  state.socket = socket;
  setConnection('connecting', state.everConnected ? `reconnecting… (attempt ${state.connectAttempt + 1})` : 'connecting…');
  socket.addEventListener('open', () => {
    if (state.everConnected) state.reconnects++;
    state.everConnected = true;
    state.connectAttempt = 0;
    setConnection('live', state.reconnects > 0 ? `live · reconnected ×${state.reconnects}` : 'live');
    // The backfill brings the labels resolved during the gap with the predictions the service kept.
    subscribe(state.stream);
  });
  socket.addEventListener('message', onFrame);
  socket.addEventListener('close', (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.connectAttempt) * (0.5 + Math.random() / 2);
    state.connectAttempt++;
    setConnection('reconnecting', `disconnected (${event.code || 'no code'}) · retry in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  });
}

// ---- polls ------------------------------------------------------------------------------

async function fetchJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function renderSymbols(symbols) {
  const select = $('symbol-select');
  const names = symbols.map((s) => s.stream);
  const current = [...select.options].map((o) => o.value);
  if (names.length !== current.length || names.some((name, i) => name !== current[i])) {
    select.replaceChildren(...names.map((name) => new Option(name, name)));
    if (state.stream) select.value = state.stream;
  }
  select.closest('label').hidden = names.length < 2;
  if (!state.stream && names.length > 0) {
    const wanted = decodeURIComponent(location.hash.slice(1));
    selectSymbol(names.includes(wanted) ? wanted : names[0]);
  }
}

function renderFeeds(status) {
  const rows = status.feeds.map((feed) => {
    const synced = Object.entries(feed.synced);
    const row = document.createElement('div');
    row.className = 'feed';
    row.dataset.connected = String(feed.connected);
    const name = document.createElement('div');
    name.className = 'feed-name';
    name.innerHTML = `<span class="dot ${feed.connected ? 'dot-right' : 'dot-wrong'}"></span>`;
    name.append(`${feed.venue}${feed.demo ? ' (demo)' : ''} · ${feed.connected ? 'connected' : 'disconnected'}`);
    const figures = document.createElement('div');
    figures.className = 'feed-figures';
    figures.textContent = `reconnects ${feed.reconnects} · conflated ${feed.conflatedSnapshots} · resyncs ${feed.resyncs}`;
    const sync = document.createElement('div');
    sync.className = 'feed-sync';
    sync.textContent = synced.map(([symbol, ok]) => `${symbol} ${ok ? 'in sync' : 'syncing'}`).join(' · ') + (feed.lastError ? ` · last error: ${feed.lastError}` : '');
    row.append(name, figures, sync);
    return row;
  });
  if (rows.length === 0) {
    const none = document.createElement('div');
    none.className = 'card-note';
    none.textContent = status.role === 'api' ? 'served from NATS: the feeds run on the ingest role, the learners on the workers' : 'no live feed: snapshots arrive by push ingest';
    rows.push(none);
  }
  $('feeds').replaceChildren(...rows);
  $('stream-note').textContent = `stream: ${status.stream.subscribers} subscriber(s) · ${status.stream.conflated} conflated · ${status.stream.dropped} dropped`;
}

async function pollStatus() {
  try {
    const status = await fetchJson('/v1/status');
    renderSymbols(status.symbols);
    renderFeeds(status);
    const latency = status.engine.stepLatencyUs;
    $('latency').textContent = `${formatMicros(latency.p50)} / ${formatMicros(latency.p99)}`;
    $('latency-note').textContent = `p50 / p99 µs over ${status.engine.steps.toLocaleString()} steps`;
  } catch (error) {
    $('latency-note').textContent = `status unavailable: ${error.message}`;
  }
}

function accuracyRow(model, colour, rolling, overall, best, mixWeight) {
  const row = document.createElement('div');
  row.className = `accuracy-row${best ? ' best' : ''}`;
  row.dataset.model = model.model;
  row.dataset.accuracy = rolling?.accuracy === null || rolling === undefined ? '' : String(rolling.accuracy);
  const name = document.createElement('div');
  name.className = 'accuracy-name';
  name.style.color = colour;
  name.textContent = model.model;
  const bar = document.createElement('div');
  bar.className = 'accuracy-bar';
  const fill = document.createElement('div');
  fill.className = 'accuracy-fill';
  fill.style.width = `${((rolling?.accuracy ?? 0) * 100).toFixed(1)}%`;
  fill.style.background = colour;
  bar.append(fill);
  const value = document.createElement('div');
  value.className = 'accuracy-value';
  value.textContent = percent(rolling?.accuracy);
  const note = document.createElement('div');
  note.className = 'accuracy-note';
  note.textContent = `${(rolling?.n ?? 0).toLocaleString()} in window · overall ${percent(overall.accuracy)} of ${overall.n.toLocaleString()} · log-loss ${overall.logLoss === null ? '—' : overall.logLoss.toFixed(3)}${mixWeight === undefined ? '' : ` · mix weight ${mixWeight.toFixed(3)}`}`;
  row.append(name, bar, value, note);
  return row;
}

/** Rolling accuracy is the engine's own prequential score, read from the metrics endpoint. */
async function pollMetrics() {
  const symbol = state.stream;
  if (!symbol) return;
  try {
    const metrics = await fetchJson(`${streamPath(symbol)}/metrics`);
    if (symbol !== state.stream) return;
    const rollingWindow = metrics.models[0]?.rolling[0]?.window;
    $('accuracy-window').textContent = rollingWindow ? `last ${rollingWindow.toLocaleString()} scored` : '';
    const accuracies = metrics.models.map((m) => m.rolling[0]?.accuracy ?? -1);
    const best = Math.max(...accuracies);
    $('accuracy').replaceChildren(
      ...metrics.models.map((model, m) =>
        accuracyRow(
          model,
          MODEL_COLOURS[m % MODEL_COLOURS.length],
          model.rolling[0],
          model.overall,
          best > 0 && accuracies[m] === best,
          metrics.mixWeights?.find((w) => w.model === model.model)?.weight,
        ),
      ),
    );
  } catch (error) {
    $('accuracy-window').textContent = `metrics unavailable: ${error.message}`;
  }
}

$('symbol-select').addEventListener('change', (event) => selectSymbol(event.target.value));
$('window-size').textContent = WINDOW.toLocaleString();
connect();
void pollStatus();
setInterval(pollStatus, STATUS_POLL_MS);
setInterval(pollMetrics, METRICS_POLL_MS);
