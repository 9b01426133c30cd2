import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Begin, crc32End, crc32Text } from '../../src/venues/crc32.js';

describe('crc32', () => {
  // Check values of CRC-32/ISO-HDLC (the zlib/PNG/Ethernet CRC), from the CRC RevEng catalogue
  // ("123456789") and the zlib test suite.
  it.each([
    ['', 0x00000000],
    ['a', 0xe8b7be43],
    ['123456789', 0xcbf43926],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ])('crc32(%j) = %i', (text, expected) => {
    expect(crc32(text)).toBe(expected);
  });

  it("reproduces the checksum of Kraken's documented checksum input string", () => {
    // The concatenated top-10 asks + bids string of Kraken's v1 checksum guide example and its
    // documented checksum (https://docs.kraken.com/api/docs/guides/spot-ws-book-v1).
    const input =
      '50055005010500501550050205005025500503050050355005040500504550050505005000500499550049905004980500497550049705004965500496050049555004950500';
    expect(crc32(input)).toBe(974947235);
  });

  it('returns an unsigned 32-bit integer', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const value = crc32(text);
        return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
      }),
    );
  });

  it("agrees with zlib's crc32 over the UTF-8 bytes of any string, lone surrogates included", () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => crc32(text) === zlibCrc32(Buffer.from(text, 'utf8'))),
      { numRuns: 200 },
    );
    for (const lone of ['\ud800', 'a\udfffb', '\ud83d']) {
      expect(crc32(lone)).toBe(zlibCrc32(Buffer.from(lone, 'utf8')));
    }
  });

  it('streams: hashing two pieces equals hashing their concatenation', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (head, tail) => {
        const streamed = crc32End(crc32Text(crc32Text(crc32Begin(), head), tail));
        return streamed === crc32(head + tail);
      }),
    );
  });
});
