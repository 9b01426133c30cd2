// How far the file readers have got through their input, in bytes of the files on disk: what a
// replay's progress bar and ETA are measured against (event counts are unknown until the end).
// A process-wide count, like a metric: every file a venue reader opens adds to it.
import { createReadStream, type ReadStream } from 'node:fs';
import { pipeline, Transform, type Readable } from 'node:stream';

let closedBytes = 0;
const open = new Set<ReadStream>();

/** Bytes read from disk so far by the venue readers of this process. */
export function inputBytesRead(): number {
  let bytes = closedBytes;
  for (const stream of open) bytes += stream.bytesRead;
  return bytes;
}

/** `createReadStream`, counted in `inputBytesRead`. */
export function countedReadStream(path: string, options?: { highWaterMark?: number }): ReadStream {
  const stream = createReadStream(path, options);
  open.add(stream);
  stream.once('close', () => {
    open.delete(stream);
    closedBytes += stream.bytesRead;
  });
  return stream;
}

/**
 * A decompressed stream (a zip entry) counted as the compressed bytes it came from, in
 * proportion: each chunk adds its length times `compressedSize / uncompressedSize`.
 */
export function countedDecompressed(stream: Readable, compressedSize: number, uncompressedSize: number): Readable {
  const ratio = uncompressedSize > 0 ? compressedSize / uncompressedSize : 0;
  let counted = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const next = Math.min(compressedSize, counted + chunk.length * ratio);
      closedBytes += next - counted;
      counted = next;
      done(null, chunk);
    },
  });
  // pipeline, not pipe: a reader that stops early destroys the counter, and with it the entry.
  pipeline(stream, counter, () => {});
  return counter;
}
