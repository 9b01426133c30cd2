// Streaming access to the entries of a zip archive (the LOBSTER samples ship as .zip).
// Entries are decompressed on demand straight from the archive: no temp files, and two
// entries can be read at the same time (LOBSTER's message and orderbook files in lock step).
import { open as openFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { openPromise, type Entry } from 'yauzl';
import { countedDecompressed } from './input-bytes.js';

export interface ZipArchive {
  /** Entry names in archive order (directories left out). */
  readonly names: readonly string[];
  /** A fresh decompressing stream over one entry. */
  open(name: string): Promise<Readable>;
  close(): void;
}

export async function openZip(path: string): Promise<ZipArchive> {
  // autoClose would shut the file once the central directory is read, before we open streams.
  const zip = await openPromise(path, { autoClose: false, lazyEntries: true });
  const entries = new Map<string, Entry>();
  try {
    for await (const entry of zip.eachEntry()) {
      if (!entry.fileName.endsWith('/')) entries.set(entry.fileName, entry);
    }
  } catch (error) {
    zip.close();
    throw error;
  }
  return {
    names: [...entries.keys()],
    open(name) {
      const entry = entries.get(name);
      if (!entry) return Promise.reject(new Error(`${path}: no entry named ${name}`));
      return zip.openReadStreamPromise(entry).then((stream) => countedDecompressed(stream, entry.compressedSize, entry.uncompressedSize));
    },
    close() {
      if (zip.isOpen) zip.close();
    },
  };
}

/** True when the file starts with a zip local-file-header signature ("PK\x03\x04"), whatever its name. */
export async function isZipFile(path: string): Promise<boolean> {
  const handle = await openFile(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    const { bytesRead } = await handle.read(magic, 0, 4, 0);
    return bytesRead === 4 && magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 0x03 && magic[3] === 0x04;
  } finally {
    await handle.close();
  }
}
