// Progress for long replays. On a terminal one line is redrawn in place; into a file or a
// pipe (CI logs) a plain line is written now and then, so the log stays readable. The
// clock is read only every `checkEvery` events: `tick` is an add and a compare otherwise.

export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  /** Terminal width; lines are cut to fit so a redraw never wraps. */
  readonly columns?: number;
}

export interface ProgressOptions {
  /** Prefix of every line; default "replay". */
  readonly label?: string;
  /** Events expected, when known: enables the bar, the percentage and the ETA. */
  readonly total?: number;
  /** Default process.stderr, so stdout stays free for data. */
  readonly stream?: ProgressStream;
  /** Milliseconds from any origin; default performance.now. */
  readonly now?: () => number;
  /** Redraw in place; default `stream.isTTY`. */
  readonly tty?: boolean;
  /** Events between clock reads; default 1024. */
  readonly checkEvery?: number;
  /** Minimum time between redraws on a terminal; default 200 ms. */
  readonly redrawMs?: number;
  /** Time between plain lines; default 5000 ms. */
  readonly plainIntervalMs?: number;
  /** With a known total, a plain line is also written at each multiple of this percentage; default 10. */
  readonly plainPercentStep?: number;
  /** Characters of the bar; default 24. */
  readonly barWidth?: number;
  /**
   * The input's size and how much of it has been read: with no event total, the bar, the
   * percentage and the ETA follow the bytes (a replay knows its files' sizes, not their events).
   */
  readonly bytes?: { readonly total: number; readonly read: () => number };
}

const CLEAR_TO_END_OF_LINE = '\x1b[K';

export class ProgressReporter {
  private readonly label: string;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly tty: boolean;
  private readonly checkEvery: number;
  private readonly redrawMs: number;
  private readonly plainIntervalMs: number;
  private readonly plainPercentStep: number;
  private readonly barWidth: number;
  private readonly bytes: ProgressOptions['bytes'];
  private readonly startedAt: number;
  private total: number | undefined;
  private events = 0;
  private nextCheckAt: number;
  private lastWriteAt: number;
  private lastPercentStep = 0;
  private finished = false;

  constructor(options: ProgressOptions = {}) {
    this.label = options.label ?? 'replay';
    this.stream = options.stream ?? process.stderr;
    this.now = options.now ?? (() => performance.now());
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.checkEvery = Math.max(1, Math.floor(options.checkEvery ?? 1024));
    this.redrawMs = options.redrawMs ?? 200;
    this.plainIntervalMs = options.plainIntervalMs ?? 5000;
    this.plainPercentStep = options.plainPercentStep ?? 10;
    this.barWidth = options.barWidth ?? 24;
    this.total = validTotal(options.total);
    this.bytes = options.bytes && validTotal(options.bytes.total) !== undefined ? options.bytes : undefined;
    this.startedAt = this.now();
    this.lastWriteAt = this.startedAt;
    this.nextCheckAt = this.checkEvery;
  }

  get done(): number {
    return this.events;
  }

  /** For a source that learns its size late (e.g. after counting lines). */
  setTotal(total: number | undefined): void {
    this.total = validTotal(total);
  }

  /** Counts processed events; cheap enough to call once per event. */
  tick(events = 1): void {
    this.events += events;
    if (this.events < this.nextCheckAt || this.finished) return;
    this.nextCheckAt = this.events + this.checkEvery;
    const at = this.now();
    if (this.tty) {
      if (at - this.lastWriteAt >= this.redrawMs) this.redraw(at);
    } else {
      // Evaluated first so a line written for the interval also counts as this step's line.
      const crossedStep = this.crossedPercentStep();
      if (crossedStep || at - this.lastWriteAt >= this.plainIntervalMs) this.writePlain(at);
    }
  }

  /** Writes the summary line (and ends the redrawn line on a terminal). Only the first call writes. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const at = this.now();
    const seconds = (at - this.startedAt) / 1000;
    const rate = seconds > 0 ? this.events / seconds : Number.NaN;
    const summary = `${this.label}: done, ${formatCount(this.events)} events in ${seconds.toFixed(1)} s (${formatRate(rate)} events/s)`;
    this.stream.write(this.tty ? `\r${this.fit(summary)}${CLEAR_TO_END_OF_LINE}\n` : `${summary}\n`);
  }

  private redraw(at: number): void {
    this.lastWriteAt = at;
    const { elapsed, rate, eta, fraction } = this.timing(at);
    const total = this.total;
    const parts = [this.label];
    if (fraction !== null) {
      const filled = Math.round(fraction * this.barWidth);
      parts.push(`[${'█'.repeat(filled)}${'░'.repeat(this.barWidth - filled)}]`, `${(fraction * 100).toFixed(1).padStart(5)}%`);
    }
    if (total !== undefined) parts.push(`${formatCount(this.events)}/${formatCount(total)} events`);
    else parts.push(`${formatCount(this.events)} events`);
    if (total === undefined && this.bytes) parts.push(`${formatMiB(this.bytes.read())}/${formatMiB(this.bytes.total)} MiB`);
    parts.push(`${formatRate(rate)} ev/s`, fraction !== null ? `ETA ${formatDuration(eta)}` : `elapsed ${formatDuration(elapsed)}`);
    this.stream.write(`\r${this.fit(parts.join('  '))}${CLEAR_TO_END_OF_LINE}`);
  }

  private writePlain(at: number): void {
    this.lastWriteAt = at;
    const { elapsed, rate, eta, fraction } = this.timing(at);
    const total = this.total;
    const progress =
      total !== undefined
        ? `${Math.floor((fraction ?? 0) * 100)}% ${formatCount(this.events)}/${formatCount(total)} events`
        : fraction !== null
          ? `${Math.floor(fraction * 100)}% of the input, ${formatCount(this.events)} events`
          : `${formatCount(this.events)} events`;
    const etaText = fraction !== null ? `, ETA ${formatDuration(eta)}` : '';
    this.stream.write(`${this.label}: ${progress}, ${formatRate(rate)} events/s${etaText}, elapsed ${formatDuration(elapsed)}\n`);
  }

  private crossedPercentStep(): boolean {
    const fraction = this.fraction();
    if (fraction === null || !(this.plainPercentStep > 0)) return false;
    const step = Math.floor((fraction * 100) / this.plainPercentStep);
    if (step <= this.lastPercentStep) return false;
    this.lastPercentStep = step;
    return true;
  }

  /** Share of the work done, 0..1: by events when their total is known, else by bytes read; null when neither is. */
  private fraction(): number | null {
    if (this.total !== undefined) return Math.min(1, this.events / this.total);
    if (this.bytes) return Math.min(1, Math.max(0, this.bytes.read() / this.bytes.total));
    return null;
  }

  private timing(at: number): { elapsed: number; rate: number; eta: number; fraction: number | null } {
    const elapsed = (at - this.startedAt) / 1000;
    const rate = elapsed > 0 ? this.events / elapsed : Number.NaN;
    const fraction = this.fraction();
    const eta = this.total !== undefined ? etaSeconds(this.events, this.total, rate) : fraction === null ? Number.NaN : etaFromFraction(fraction, elapsed);
    return { elapsed, rate, eta, fraction };
  }

  private fit(line: string): string {
    const columns = this.stream.columns;
    // One column short of the width: writing the last column makes some terminals wrap.
    return columns !== undefined && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
  }
}

function validTotal(total: number | undefined): number | undefined {
  return total !== undefined && Number.isFinite(total) && total > 0 ? total : undefined;
}

/** Seconds left at the current mean rate: 0 once done, NaN when it cannot be known. */
export function etaSeconds(done: number, total: number | undefined, eventsPerSecond: number): number {
  if (total === undefined) return Number.NaN;
  if (done >= total) return 0;
  return eventsPerSecond > 0 ? (total - done) / eventsPerSecond : Number.NaN;
}

/** Seconds left when `fraction` of the work took `elapsed` seconds, at the same pace: 0 once done, NaN before any progress. */
export function etaFromFraction(fraction: number, elapsed: number): number {
  if (fraction >= 1) return 0;
  return fraction > 0 ? (elapsed * (1 - fraction)) / fraction : Number.NaN;
}

function formatMiB(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

/** `m:ss` or `h:mm:ss`; `--:--` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${secs}` : `${minutes}:${secs}`;
}

/** 950, 12.3k, 4.56M; `?` when unknown. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '?';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}
