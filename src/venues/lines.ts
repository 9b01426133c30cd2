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
  const gzip = await isGzipFile(path);
  const raw = countedReadStream(path, { highWaterMark: 1 << 18 });
  const stream: Readable = gzip ? raw.pipe(createGunzip()) : raw;
  yield* lineBatchesOf(stream);
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
 * split exactly as `lineBatchesOf` splits text (\n, \r\n or a lone \r; blank lines skipped),
 * for a reader that scans bytes and decodes only the lines it must (`bytes.toString('utf8',
 * start, end)` is the line `readLineBatches` gives: no terminator is part of a UTF-8 sequence).
 */
export async function* readByteLineBatches(path: string): AsyncGenerator<ByteLines> {
  const gzip = await isGzipFile(path);
  const raw = countedReadStream(path, { highWaterMark: 1 << 18 });
  const stream: Readable = gzip ? raw.pipe(createGunzip()) : raw;
  let carry: Buffer | null = null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const bytes: Buffer = carry !== null && carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      const starts: number[] = [];
      const ends: number[] = [];
      let start = 0;
      let cr = bytes.indexOf(CR);
      for (;;) {
        const newline = bytes.indexOf(LF, start);
        const end = newline < 0 ? bytes.length : newline;
        if (cr >= 0 && cr < start) cr = bytes.indexOf(CR, start);
        if (cr >= 0 && cr < end - 1) {
          if (cr > start) {
            starts.push(start);
            ends.push(cr);
          }
          start = cr + 1;
          continue;
        }
        if (newline < 0) break;
        const stop = cr === end - 1 ? cr : end;
        if (stop > start) {
          starts.push(start);
          ends.push(stop);
        }
        start = newline + 1;
      }
      carry = bytes.subarray(start);
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

/**
 * The lines of a byte stream, split on \n, \r\n or \r, a decoded chunk's worth at a time; blank
 * lines skipped. Split by hand rather than with node:readline, which costs several times more
 * per line.
 */
export async function* lineBatchesOf(stream: Readable): AsyncGenerator<string[]> {
  stream.setEncoding('utf8');
  let carry = '';
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = carry + chunk;
      const lines: string[] = [];
      let start = 0;
      // Lone \r terminators are rare (old Mac files): the next \r is found once and reused.
      let cr = text.indexOf('\r');
      for (;;) {
        const newline = text.indexOf('\n', start);
        const end = newline < 0 ? text.length : newline;
        if (cr >= 0 && cr < start) cr = text.indexOf('\r', start);
        if (cr >= 0 && cr < end - 1) {
          if (cr > start) lines.push(text.slice(start, cr));
          start = cr + 1;
          continue;
        }
        if (newline < 0) break;
        const stop = cr === end - 1 ? cr : end;
        if (stop > start) lines.push(text.slice(start, stop));
        start = newline + 1;
      }
      carry = text.slice(start);
      if (lines.length > 0) yield lines;
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
