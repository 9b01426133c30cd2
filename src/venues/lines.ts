// Line readers shared by every file format. Gzip is detected by its magic bytes, not by
// the file name, so a renamed file still reads.
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { countedReadStream } from './input-bytes.js';

export async function isGzipFile(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/** Text lines of a plain or gzip file, without line terminators; blank lines skipped. */
export async function* readLines(path: string): AsyncGenerator<string> {
  for await (const batch of readLineBatches(path)) yield* batch;
}

/** `readLines` a decoded chunk at a time: one await per chunk instead of one per line. */
export async function* readLineBatches(path: string): AsyncGenerator<string[]> {
  yield* lineBatchesOf(await fileBytes(path));
}

/** The bytes of a plain or gzip file, decompressed. */
async function fileBytes(path: string): Promise<Readable> {
  const gzip = await isGzipFile(path);
  const raw = countedReadStream(path, { highWaterMark: 1 << 18 });
  return gzip ? raw.pipe(createGunzip()) : raw;
}

/**
 * Splits `length` units of text (characters or bytes) on \n, \r\n or a lone \r, blank lines
 * skipped, given where the next \n and \r at or after a position are: pushes each line's
 * [start, end) and returns where the unfinished last line starts. Split by hand rather than
 * with node:readline, which costs several times more per line.
 */
function splitLines(length: number, nextLf: (from: number) => number, nextCr: (from: number) => number, starts: number[], ends: number[]): number {
  let start = 0;
  // Lone \r terminators are rare (old Mac files): the next \r is found once and reused.
  let cr = nextCr(0);
  for (;;) {
    const newline = nextLf(start);
    const end = newline < 0 ? length : newline;
    if (cr >= 0 && cr < start) cr = nextCr(start);
    if (cr >= 0 && cr < end - 1) {
      if (cr > start) {
        starts.push(start);
        ends.push(cr);
      }
      start = cr + 1;
      continue;
    }
    if (newline < 0) return start;
    const stop = cr === end - 1 ? cr : end;
    if (stop > start) {
      starts.push(start);
      ends.push(stop);
    }
    start = newline + 1;
  }
}

/** The lines of a decoded chunk, as ranges of its bytes: line i is bytes[starts[i], ends[i]). */
export interface ByteLines {
  readonly bytes: Buffer;
  readonly starts: number[];
  readonly ends: number[];
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * `readLineBatches` without decoding: the line ranges of each chunk of a plain or gzip file,
 * split by `splitLines` as `lineBatchesOf` splits text (\n, \r\n or a lone \r; blank lines skipped),
 * for a reader that scans bytes and decodes only the lines it must (`bytes.toString('utf8',
 * start, end)` is the line `readLineBatches` gives: no terminator is part of a UTF-8 sequence).
 */
export async function* readByteLineBatches(path: string): AsyncGenerator<ByteLines> {
  const stream = await fileBytes(path);
  let carry: Buffer | null = null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const bytes: Buffer = carry !== null && carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      const starts: number[] = [];
      const ends: number[] = [];
      const unfinished = splitLines(
        bytes.length,
        (from) => bytes.indexOf(LF, from),
        (from) => bytes.indexOf(CR, from),
        starts,
        ends,
      );
      carry = bytes.subarray(unfinished);
      if (starts.length > 0) yield { bytes, starts, ends };
    }
    if (carry !== null) {
      const end = carry.length > 0 && carry[carry.length - 1] === CR ? carry.length - 1 : carry.length;
      if (end > 0) yield { bytes: carry, starts: [0], ends: [end] };
    }
  } finally {
    stream.destroy();
  }
}

/** Text lines of any readable byte stream (a zip entry, a gunzip stream...). */
export async function* linesOf(stream: Readable): AsyncGenerator<string> {
  for await (const batch of lineBatchesOf(stream)) yield* batch;
}

/** The lines of a byte stream, split as `splitLines` splits them, a decoded chunk's worth at a time. */
export async function* lineBatchesOf(stream: Readable): AsyncGenerator<string[]> {
  stream.setEncoding('utf8');
  let carry = '';
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = carry + chunk;
      const starts: number[] = [];
      const ends: number[] = [];
      const unfinished = splitLines(
        text.length,
        (from) => text.indexOf('\n', from),
        (from) => text.indexOf('\r', from),
        starts,
        ends,
      );
      carry = text.slice(unfinished);
      if (starts.length > 0) yield starts.map((start, i) => text.slice(start, ends[i]));
    }
    const last = carry.endsWith('\r') ? carry.slice(0, -1) : carry;
    if (last.length > 0) yield [last];
  } finally {
    stream.destroy();
  }
}

export interface RecordedFrame {
  /** Local receive time, epoch ms (fractional, microsecond precision kept). */
  readonly localTs: number;
  /** The raw websocket frame (or REST body) exactly as recorded. */
  readonly frame: string;
}

/**
 * Parses one line of a raw-frame recording: `<receive time, ns since epoch> <frame>`
 * (the hftbacktest format of ../shared/data/binance-spot-btcusdt). Returns null for a line
 * without that shape.
 */
export function parseRecordedLine(line: string): RecordedFrame | null {
  const space = line.indexOf(' ');
  if (space < 7) return null;
  const ns = line.slice(0, space);
  if (!/^\d+$/.test(ns)) return null;
  // ns since epoch exceeds 2^53; splitting the digits keeps microsecond precision in ms.
  const localTs = Number(`${ns.slice(0, -6)}.${ns.slice(-6)}`);
  return { localTs, frame: line.slice(space + 1) };
}

/** Every frame of a raw-frame recording (plain or gzip), in file order. */
export async function* readRecordedFrames(path: string): AsyncGenerator<RecordedFrame> {
  for await (const line of readLines(path)) {
    const recorded = parseRecordedLine(line);
    if (recorded) yield recorded;
  }
}
