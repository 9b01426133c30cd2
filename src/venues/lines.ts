// Line readers shared by every file format. Gzip is detected by its magic bytes, not by
// the file name, so a renamed file still reads.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

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
  const gzip = await isGzipFile(path);
  const raw = createReadStream(path);
  const stream: Readable = gzip ? raw.pipe(createGunzip()) : raw;
  yield* linesOf(stream);
}

/** Text lines of any readable byte stream (a zip entry, a gunzip stream...). */
export async function* linesOf(stream: Readable): AsyncGenerator<string> {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.length > 0) yield line;
    }
  } finally {
    lines.close();
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
