// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib's crc32 and Kraken's book
// checksum use it. Table-driven; the streaming form (`crc32Begin` / `crc32Byte` /
// `crc32End`) lets a caller hash characters as it produces them, without building a string.

const POLYNOMIAL = 0xedb88320;

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? POLYNOMIAL ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The running register before the first byte. */
export function crc32Begin(): number {
  return 0xffffffff;
}

/** Feeds one byte (0..255) into the running register. */
export function crc32Byte(crc: number, byte: number): number {
  return TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
}

/** The unsigned checksum of everything fed so far. */
export function crc32End(crc: number): number {
  return (crc ^ 0xffffffff) >>> 0;
}

/** Feeds the UTF-8 bytes of `text` into the running register. */
export function crc32Text(crc: number, text: string): number {
  let register = crc;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      register = TABLE[(register ^ code) & 0xff] ^ (register >>> 8);
      continue;
    }
    // A surrogate pair is one code point of four UTF-8 bytes; a lone surrogate is encoded as
    // U+FFFD, the way TextEncoder and Buffer.from(text, 'utf8') do.
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      } else {
        code = 0xfffd;
      }
    } else if (code >= 0xd800 && code <= 0xdfff) {
      code = 0xfffd;
    }
    if (code < 0x800) {
      register = crc32Byte(register, 0xc0 | (code >> 6));
    } else if (code < 0x10000) {
      register = crc32Byte(register, 0xe0 | (code >> 12));
      register = crc32Byte(register, 0x80 | ((code >> 6) & 0x3f));
    } else {
      register = crc32Byte(register, 0xf0 | (code >> 18));
      register = crc32Byte(register, 0x80 | ((code >> 12) & 0x3f));
      register = crc32Byte(register, 0x80 | ((code >> 6) & 0x3f));
    }
    register = crc32Byte(register, 0x80 | (code & 0x3f));
  }
  return register;
}

/** CRC-32 of the UTF-8 bytes of `text`, as an unsigned 32-bit integer. */
export function crc32(text: string): number {
  return crc32End(crc32Text(crc32Begin(), text));
}
