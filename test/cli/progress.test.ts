import { describe, expect, it } from 'vitest';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ProgressReporter, etaFromFraction, etaSeconds, formatDuration, formatRate, type ProgressStream } from '../../src/cli/progress.js';
import { inputBytesRead } from '../../src/venues/input-bytes.js';
import { readLines } from '../../src/venues/lines.js';
import { lobster } from '../../src/venues/lobster.js';

class FakeStream implements ProgressStream {
  readonly chunks: string[] = [];
  constructor(
    readonly isTTY: boolean,
    readonly columns?: number,
  ) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

class FakeClock {
  ms = 0;
  reads = 0;
  readonly now = (): number => {
    this.reads++;
    return this.ms;
  };
}

// Any C0 control character except the newline, and DEL.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_CHARACTERS = /[\x00-\x09\x0b-\x1f\x7f]/;

describe('ProgressReporter on a terminal', () => {
  it('redraws one line with \\r, the bar, the rate and the ETA', () => {
    const stream = new FakeStream(true, 120);
    const clock = new FakeClock();
    const progress = new ProgressReporter({ stream, now: clock.now, total: 10_000, checkEvery: 100, barWidth: 10, label: 'replay' });
    clock.ms = 1000;
    progress.tick(1000); // 1000 events in 1 s of 10,000: 1000 ev/s, 9 s left
    clock.ms = 2500;
    progress.tick(2000); // 3000 events in 2.5 s: 1200 ev/s, 7000 / 1200 = 5.83 s -> 0:06
    expect(stream.chunks).toEqual([
      '\rreplay  [█░░░░░░░░░]   10.0%  1,000/10,000 events  1.0k ev/s  ETA 0:09\x1b[K',
      '\rreplay  [███░░░░░░░]   30.0%  3,000/10,000 events  1.2k ev/s  ETA 0:06\x1b[K',
    ]);
    expect(stream.text).not.toContain('\n');
    clock.ms = 5000;
    progress.tick(7000);
    progress.finish();
    progress.finish();
    expect(stream.chunks.at(-1)).toBe('\rreplay: done, 10,000 events in 5.0 s (2.0k events/s)\x1b[K\n');
    expect(stream.chunks.filter((chunk) => chunk.includes('done'))).toHaveLength(1);
  });

  it('shows events and elapsed time without a bar when the total is unknown, cut to the terminal width', () => {
    const clock = new FakeClock();
    const wide = new FakeStream(true);
    const narrow = new FakeStream(true, 40);
    const onWide = new ProgressReporter({ stream: wide, now: clock.now, checkEvery: 1 });
    const onNarrow = new ProgressReporter({ stream: narrow, now: clock.now, checkEvery: 1 });
    clock.ms = 125_000;
    onWide.tick(2_600_000);
    onNarrow.tick(2_600_000);
    expect(wide.chunks).toEqual(['\rreplay  2,600,000 events  20.8k ev/s  elapsed 2:05\x1b[K']);
    // 40 columns: 39 characters of text, so the cursor never reaches the last column.
    expect(narrow.chunks).toEqual(['\rreplay  2,600,000 events  20.8k ev/s  e\x1b[K']);
  });

  it('reads the clock once per checkEvery events and redraws at most every redrawMs', () => {
    const stream = new FakeStream(true, 200);
    const clock = new FakeClock();
    const progress = new ProgressReporter({ stream, now: clock.now, total: 1_000_000, redrawMs: 200 });
    for (let i = 0; i < 1_000_000; i++) {
      if (i % 1000 === 0) clock.ms += 10; // 10 ms per 1000 events
      progress.tick();
    }
    // One read at construction, then one per 1024 events.
    expect(clock.reads).toBe(1 + Math.floor(1_000_000 / 1024));
    // 10 s of fake time at most one redraw per 200 ms.
    expect(stream.chunks.length).toBeLessThanOrEqual(50);
    expect(stream.chunks.length).toBeGreaterThanOrEqual(45);
  });
});

describe('ProgressReporter into a log', () => {
  it('writes plain lines at the interval and at each percentage step, with no control characters', () => {
    const stream = new FakeStream(false);
    const clock = new FakeClock();
    const progress = new ProgressReporter({ stream, now: clock.now, total: 100_000, checkEvery: 1000, plainIntervalMs: 5000, plainPercentStep: 25 });
    for (let step = 1; step <= 100; step++) {
      clock.ms += 100; // 1000 events per 100 ms: 10,000 events/s
      progress.tick(1000);
    }
    progress.finish();
    expect(stream.chunks).toEqual([
      'replay: 25% 25,000/100,000 events, 10.0k events/s, ETA 0:08, elapsed 0:03\n',
      'replay: 50% 50,000/100,000 events, 10.0k events/s, ETA 0:05, elapsed 0:05\n',
      'replay: 75% 75,000/100,000 events, 10.0k events/s, ETA 0:03, elapsed 0:08\n',
      'replay: 100% 100,000/100,000 events, 10.0k events/s, ETA 0:00, elapsed 0:10\n',
      'replay: done, 100,000 events in 10.0 s (10.0k events/s)\n',
    ]);
    expect(stream.text).not.toMatch(CONTROL_CHARACTERS);
  });

  it('falls back to the interval alone when the total is unknown', () => {
    const stream = new FakeStream(false);
    const clock = new FakeClock();
    const progress = new ProgressReporter({ stream, now: clock.now, checkEvery: 1, plainIntervalMs: 5000 });
    for (let second = 1; second <= 12; second++) {
      clock.ms = second * 1000;
      progress.tick(500);
    }
    expect(stream.chunks).toEqual(['replay: 2,500 events, 500 events/s, elapsed 0:05\n', 'replay: 5,000 events, 500 events/s, elapsed 0:10\n']);
    expect(stream.text).not.toMatch(CONTROL_CHARACTERS);
  });
});

describe('progress arithmetic', () => {
  it('computes the ETA from the mean rate', () => {
    expect(etaSeconds(250, 1000, 50)).toBeCloseTo(15, 12);
    expect(etaSeconds(1000, 1000, 50)).toBe(0);
    expect(etaSeconds(1200, 1000, 50)).toBe(0);
    expect(etaSeconds(10, undefined, 50)).toBeNaN();
    expect(etaSeconds(0, 1000, Number.NaN)).toBeNaN();
  });

  it('formats durations and rates', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(59.6)).toBe('1:00');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(Number.NaN)).toBe('--:--');
    expect(formatRate(950)).toBe('950');
    expect(formatRate(12_345)).toBe('12.3k');
    expect(formatRate(4_560_000)).toBe('4.56M');
    expect(formatRate(Number.NaN)).toBe('?');
  });
});

describe('ProgressReporter by bytes read', () => {
  it('draws the bar, the percentage and the ETA from the bytes read when the event total is unknown', () => {
    const stream = new FakeStream(true, 160);
    const clock = new FakeClock();
    let read = 0;
    const progress = new ProgressReporter({ stream, now: clock.now, checkEvery: 100, barWidth: 10, bytes: { total: 40 * 1024 * 1024, read: () => read } });
    clock.ms = 2000;
    read = 10 * 1024 * 1024; // a quarter in 2 s: 6 s left
    progress.tick(1000);
    expect(stream.chunks).toEqual(['\rreplay  [███░░░░░░░]   25.0%  1,000 events  10.0/40.0 MiB  500 ev/s  ETA 0:06\x1b[K']);
  });

  it('writes the share of the input and the ETA on plain lines, one per step of 10%', () => {
    const stream = new FakeStream(false);
    const clock = new FakeClock();
    let read = 0;
    const progress = new ProgressReporter({ stream, now: clock.now, checkEvery: 1, bytes: { total: 1000, read: () => read } });
    clock.ms = 1000;
    read = 50; // under the first step: nothing yet
    progress.tick(10);
    read = 200; // 20% after 1 s: 4 s left
    progress.tick(10);
    expect(stream.chunks).toEqual(['replay: 20% of the input, 20 events, 20 events/s, ETA 0:04, elapsed 0:01\n']);
  });

  it('etaFromFraction: the same pace for the rest, 0 when done, unknown before any progress', () => {
    expect(etaFromFraction(0.25, 10)).toBe(30);
    expect(etaFromFraction(1, 10)).toBe(0);
    expect(etaFromFraction(0, 10)).toBeNaN();
  });
});

describe('inputBytesRead', () => {
  it('counts every byte of a plain and of a gzip file the line reader reads, as stored on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-bytes-'));
    const text = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n');
    writeFileSync(join(dir, 'plain.txt'), text);
    writeFileSync(join(dir, 'packed.gz'), gzipSync(text));
    for (const name of ['plain.txt', 'packed.gz']) {
      const before = inputBytesRead();
      let lines = 0;
      for await (const _line of readLines(join(dir, name))) lines++;
      expect(lines).toBe(5000);
      // The stream is closed a tick after the last line.
      await new Promise((resolve) => setTimeout(resolve, 10));
      const size = name === 'plain.txt' ? Buffer.byteLength(text) : gzipSync(text).length;
      expect(inputBytesRead() - before).toBe(size);
    }
  });

  it('counts a zip entry as its compressed size once the entry has been read through', async () => {
    const archive = join(import.meta.dirname, '../../fixtures/lobster/LOBSTER_excerpt_AMZN_2012-06-21_5_first300.zip');
    const before = inputBytesRead();
    let books = 0;
    for await (const message of lobster.read([archive], { levels: 5 })) if (message.type === 'book_snapshot') books++;
    expect(books).toBeGreaterThan(0);
    const { size } = statSync(archive);
    const read = inputBytesRead() - before;
    // Both entries' compressed bytes: the archive less its headers and central directory.
    expect(read).toBeGreaterThan(size * 0.8);
    expect(read).toBeLessThanOrEqual(size);
  });
});
