// A scanner for the one line shape a canonical file is made of (what `toCanonicalJson` writes:
// `{"symbol":"…","ts":…[,"seq":…],"bids":[[p,s],…],"asks":[[p,s],…]}`, optionally led by
// `"type":"book"`), straight from the file's bytes into a snapshot: no string per line, no JSON
// object, no arrays of arrays. It only ever answers "this snapshot" or "not mine" (null): a line
// it does not recognise exactly (other key order, whitespace, escapes, non-ASCII, a trade,
// anything invalid) goes the usual way, decoded, JSON.parse and the checks of canonical.ts, so
// errors and edge cases stay theirs. Numbers come out as the same doubles JSON.parse gives
// (test/venues/canonical-scan.test.ts).
import { MAX_EPOCH_MS, SYMBOL_PATTERN } from '../domain/schemas.js';
import type { BookSnapshot, EpochMs } from '../domain/types.js';

/** The most levels a side may list (as canonical.ts): a longer side is left to the usual path. */
const MAX_SIDE_LEVELS = 10_000;

// Exact powers of ten: a decimal of at most 15 digits times or over one of them is one
// correctly rounded IEEE operation on two exact doubles (Clinger's fast path), so it equals
// the correctly rounded conversion JSON.parse makes.
const EXACT_POWERS = Array.from({ length: 23 }, (_, i) => 10 ** i);
const MAX_FAST_DIGITS = 15;

const QUOTE = 0x22;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const BACKSLASH = 0x5c;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
const PLUS = 0x2b;
const CLOSE_BRACE = 0x7d;

/** Where the scan stands: the bytes, the position, the line's end, and the last number read. */
interface Cursor {
  bytes: Buffer;
  at: number;
  end: number;
  number: number;
}

const cursor: Cursor = { bytes: Buffer.alloc(0), at: 0, end: 0, number: 0 };

const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));
const OPEN = ascii('{"');
const TYPE_BOOK = ascii('type":"book","');
const SYMBOL_KEY = ascii('symbol":"');
const TS_KEY = ascii(',"ts":');
const SEQ_KEY = ascii(',"seq":');
const BIDS_KEY = ascii(',"bids":');
const ASKS_KEY = ascii(',"asks":');

/** The symbol of the previous line, as bytes and as the string reused while lines repeat it. */
let lastSymbol = '';
let lastSymbolBytes = new Uint8Array(0);

/**
 * The snapshot the line `bytes[start, end)` holds when it has exactly the canonical writer's
 * shape and is valid; else null. `bytes[end]`, if there is one, must be a line terminator: the
 * number and side loops stop at any byte outside their grammar (a terminator, or past the end
 * of the buffer, where a read gives undefined), so they run without a bounds check per byte,
 * and the closing brace must then sit exactly at `end - 1`.
 */
export function scanCanonicalBytes(bytes: Buffer, start: number, end: number, levels: number, localTs: EpochMs | undefined): BookSnapshot | null {
  cursor.bytes = bytes;
  cursor.at = start;
  cursor.end = end;
  if (!literal(OPEN)) return null;
  literal(TYPE_BOOK); // optional
  if (!literal(SYMBOL_KEY)) return null;
  const symbol = scanSymbol();
  if (symbol === null) return null;
  if (!literal(TS_KEY) || !scanNumber()) return null;
  const ts = cursor.number;
  if (!(ts >= 0 && ts < MAX_EPOCH_MS)) return null;
  let seq: number | undefined;
  if (literal(SEQ_KEY)) {
    if (!scanNumber() || !(Number.isSafeInteger(cursor.number) && cursor.number >= 0)) return null;
    seq = cursor.number;
  }
  if (!literal(BIDS_KEY)) return null;
  const bids = scanSide(levels);
  if (bids === null || !literal(ASKS_KEY)) return null;
  const asks = scanSide(levels);
  if (asks === null || cursor.at !== end - 1 || bytes[cursor.at] !== CLOSE_BRACE) return null;
  return { type: 'book_snapshot', symbol, ts, localTs: localTs ?? ts, seq, bids, asks };
}

/** ASCII bytes as a string (latin1: one byte, one character; the cheapest decoding Node has). */
function asciiText(bytes: Buffer, start: number, end: number): string {
  return bytes.toString('latin1', start, end);
}

function literal(text: Uint8Array): boolean {
  const { bytes, at } = cursor;
  if (at + text.length > cursor.end) return false;
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text[i]) return false;
  cursor.at = at + text.length;
  return true;
}

/** A symbol that matches the documented pattern (ASCII, so no escape), up to its closing quote. */
function scanSymbol(): string | null {
  const { bytes, at } = cursor;
  const known = lastSymbolBytes;
  if (known.length > 0 && at + known.length < cursor.end && bytes[at + known.length] === QUOTE) {
    let same = true;
    for (let i = 0; i < known.length; i++) {
      if (bytes[at + i] !== known[i]) {
        same = false;
        break;
      }
    }
    if (same) {
      cursor.at = at + known.length + 1;
      return lastSymbol;
    }
  }
  let close = at;
  while (close < cursor.end && bytes[close] !== QUOTE) {
    // An escape or a non-ASCII byte is never part of a valid symbol: the usual path says why.
    if (bytes[close] === BACKSLASH || bytes[close] >= 0x80 || close - at >= 64) return null;
    close++;
  }
  if (close === cursor.end) return null;
  const symbol = asciiText(bytes, at, close);
  if (!SYMBOL_PATTERN.test(symbol)) return null;
  lastSymbol = symbol;
  lastSymbolBytes = new Uint8Array(bytes.subarray(at, close)); // a copy: a Buffer's slice is a view
  cursor.at = close + 1;
  return symbol;
}

/** `[[p,s],…]` with finite prices and positive finite sizes, the first `levels` kept. */
function scanSide(levels: number): Float64Array | null {
  const bytes = cursor.bytes;
  if (bytes[cursor.at] !== OPEN_BRACKET) return null;
  cursor.at++;
  const wanted = Math.max(1, Math.floor(levels));
  let flat = new Float64Array(2 * wanted);
  let count = 0;
  if (bytes[cursor.at] !== CLOSE_BRACKET) {
    for (;;) {
      if (bytes[cursor.at] !== OPEN_BRACKET) return null;
      cursor.at++;
      if (!scanNumber()) return null;
      const price = cursor.number;
      if (bytes[cursor.at] !== COMMA) return null;
      cursor.at++;
      if (!scanNumber()) return null;
      const size = cursor.number;
      if (bytes[cursor.at] !== CLOSE_BRACKET) return null;
      cursor.at++;
      if (!Number.isFinite(price) || !(Number.isFinite(size) && size > 0)) return null;
      if (count < wanted) {
        flat[2 * count] = price;
        flat[2 * count + 1] = size;
      }
      if (++count > MAX_SIDE_LEVELS) return null;
      const next = bytes[cursor.at];
      if (next === CLOSE_BRACKET) break;
      if (next !== COMMA) return null;
      cursor.at++;
    }
  }
  cursor.at++;
  if (count < wanted) flat = flat.slice(0, 2 * count);
  return flat;
}

/**
 * One JSON number (RFC 8259 grammar) into `cursor.number`: digits summed exactly while there
 * are at most 15 and the exponent is small, else its text converted by `Number` (exact too).
 */
function scanNumber(): boolean {
  const bytes = cursor.bytes;
  const start = cursor.at;
  let at = start;
  const negative = bytes[at] === MINUS;
  if (negative) at++;
  let mantissa = 0;
  let digits = 0;
  let code = bytes[at];
  if (code === ZERO) {
    at++;
    code = bytes[at];
    if (code >= ZERO && code <= NINE) return false; // a leading zero
  } else if (code > ZERO && code <= NINE) {
    do {
      mantissa = mantissa * 10 + (code - ZERO);
      digits++;
      code = bytes[++at];
    } while (code >= ZERO && code <= NINE);
  } else {
    return false;
  }
  let scale = 0;
  if (code === DOT) {
    code = bytes[++at];
    if (!(code >= ZERO && code <= NINE)) return false;
    do {
      if (mantissa !== 0 || code !== ZERO) digits++;
      mantissa = mantissa * 10 + (code - ZERO);
      scale--;
      code = bytes[++at];
    } while (code >= ZERO && code <= NINE);
  }
  let exact = true;
  if (code === LOWER_E || code === UPPER_E) {
    code = bytes[++at];
    if (code === PLUS || code === MINUS) code = bytes[++at];
    if (!(code >= ZERO && code <= NINE)) return false;
    do code = bytes[++at];
    while (code >= ZERO && code <= NINE);
    exact = false;
  }
  cursor.at = at;
  if (exact && digits <= MAX_FAST_DIGITS && -scale < EXACT_POWERS.length) {
    const magnitude = scale === 0 ? mantissa : mantissa / EXACT_POWERS[-scale];
    cursor.number = negative ? -magnitude : magnitude;
  } else {
    cursor.number = Number(asciiText(cursor.bytes, start, at));
  }
  return true;
}
