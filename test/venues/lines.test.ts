// The byte line reader (what the canonical file path scans) must split a file exactly as the text
// reader does: the same lines, in order, whatever the terminators (\n, \r\n, a lone \r), blank
// lines, a last line without terminator, multi-byte UTF-8 (also across the reader's 256 KB
// chunks), plain or gzip.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readByteLineBatches, readLineBatches } from '../../src/venues/lines.js';

const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function textLines(path: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const batch of readLineBatches(path)) lines.push(...batch);
  return lines;
}

async function byteLines(path: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const { bytes, starts, ends } of readByteLineBatches(path)) {
    expect(starts.length).toBe(ends.length);
    for (let i = 0; i < starts.length; i++) {
      // What follows a line, inside its chunk, is a terminator: the scanner relies on it.
      if (ends[i] < bytes.length) expect([0x0a, 0x0d]).toContain(bytes[ends[i]]);
      lines.push(bytes.toString('utf8', starts[i], ends[i]));
    }
  }
  return lines;
}

function fileOf(name: string, content: Buffer | string, gzip = false): string {
  const path = join(dir, name);
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  writeFileSync(path, gzip ? gzipSync(bytes) : bytes);
  return path;
}

describe('readByteLineBatches', () => {
  const cases: Array<[string, string]> = [
    ['unix', 'a\nbb\nccc\n'],
    ['windows', 'a\r\nbb\r\n\r\nccc\r\n'],
    ['old mac', 'a\rbb\r\rccc\r'],
    ['mixed, blank lines, no final terminator', '\n\na\r\n\rbb\n\r\nccc'],
    ['a lone trailing \\r', 'a\nb\r'],
    ['utf-8', '{"symbol":"Ä€😀"}\n{"x":"ü"}\r\n'],
    ['empty', ''],
  ];
  for (const [name, content] of cases) {
    it(`gives the text reader's lines (${name}), plain and gzip`, async () => {
      for (const gzip of [false, true]) {
        const path = fileOf(`${name.replace(/\W+/g, '-')}${gzip ? '.gz' : ''}`, content, gzip);
        const expected = await textLines(path);
        expect(await byteLines(path)).toEqual(expected);
      }
    });
  }

  it("gives the same lines over many chunks, with lines and multi-byte characters cut at the chunks' edges", async () => {
    const parts: string[] = [];
    const terminators = ['\n', '\r\n', '\r', '\n\n'];
    for (let i = 0, length = 0; length < 1_200_000; i++) {
      const line = `${'é😀x'.repeat(i % 97)}${i}${terminators[i % terminators.length]}`;
      parts.push(line);
      length += line.length;
    }
    const content = parts.join('');
    for (const gzip of [false, true]) {
      const path = fileOf(`long${gzip ? '.gz' : ''}`, content, gzip);
      const expected = await textLines(path);
      expect(expected.length).toBeGreaterThan(5_000);
      expect(await byteLines(path)).toEqual(expected);
    }
  });
});
