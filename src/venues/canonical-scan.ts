// A scanner for the one line shape a canonical file is made of (what `toCanonicalJson` writes:
// `{"symbol":"…","ts":…[,"seq":…],"bids":[[p,s],…],"asks":[[p,s],…]}`, optionally led by
// `"type":"book"`), straight from the string into a snapshot: no JSON object, no arrays of
// arrays. It only ever answers "this snapshot" or "not mine" (null): a line it does not
// recognise exactly (other key order, whitespace, escapes, a trade, anything invalid) goes the
// usual way, JSON.parse and the checks of canonical.ts, so errors and edge cases stay theirs.
// Numbers come out as the same doubles JSON.parse gives (test/venues/canonical-scan.test.ts).
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

/** Where the scan stands: the line, the position, and the last number read. */
interface Cursor {
  line: string;
  at: number;
  number: number;
}

const cursor: Cursor = { line: '', at: 0, number: 0 };

/** The symbol of the previous line, reused while lines repeat it (no substring per line). */
let lastSymbol = '';

/** The snapshot the line holds when it has exactly the canonical writer's shape and is valid; else null. */
export function scanCanonicalSnapshot(line: string, levels: number, localTs: EpochMs | undefined): BookSnapshot | null {
  cursor.line = line;
  cursor.at = 0;
  if (!literal('{"')) return null;
  literal('type":"book","'); // optional
  if (!literal('symbol":"')) return null;
  const symbol = scanSymbol();
  if (symbol === null) return null;
  if (!literal(',"ts":') || !scanNumber()) return null;
  const ts = cursor.number;
  if (!(ts >= 0 && ts < MAX_EPOCH_MS)) return null;
  let seq: number | undefined;
  if (literal(',"seq":')) {
    if (!scanNumber() || !(Number.isSafeInteger(cursor.number) && cursor.number >= 0)) return null;
    seq = cursor.number;
  }
  if (!literal(',"bids":')) return null;
  const bids = scanSide(levels);
  if (bids === null || !literal(',"asks":')) return null;
  const asks = scanSide(levels);
  if (asks === null || !literal('}') || cursor.at !== line.length) return null;
  return { type: 'book_snapshot', symbol, ts, localTs: localTs ?? ts, seq, bids, asks };
}

function literal(text: string): boolean {
  if (!cursor.line.startsWith(text, cursor.at)) return false;
  cursor.at += text.length;
  return true;
}

/** A symbol without escapes that matches the documented pattern, up to its closing quote. */
function scanSymbol(): string | null {
  const { line, at } = cursor;
  if (lastSymbol !== '' && line.startsWith(lastSymbol, at) && line.charCodeAt(at + lastSymbol.length) === QUOTE) {
    cursor.at = at + lastSymbol.length + 1;
    return lastSymbol;
  }
  const end = line.indexOf('"', at);
  if (end < 0 || end - at > 64) return null;
  for (let i = at; i < end; i++) if (line.charCodeAt(i) === BACKSLASH) return null;
  const symbol = line.slice(at, end);
  if (!SYMBOL_PATTERN.test(symbol)) return null;
  lastSymbol = symbol;
  cursor.at = end + 1;
  return symbol;
}

/** `[[p,s],…]` with finite prices and positive finite sizes, the first `levels` kept. */
function scanSide(levels: number): Float64Array | null {
  if (!literal('[')) return null;
  const wanted = Math.max(1, Math.floor(levels));
  let flat = new Float64Array(2 * wanted);
  let count = 0;
  const line = cursor.line;
  if (line.charCodeAt(cursor.at) !== CLOSE_BRACKET) {
    for (;;) {
      if (line.charCodeAt(cursor.at) !== OPEN_BRACKET) return null;
      cursor.at++;
      if (!scanNumber()) return null;
      const price = cursor.number;
      if (line.charCodeAt(cursor.at) !== COMMA) return null;
      cursor.at++;
      if (!scanNumber()) return null;
      const size = cursor.number;
      if (line.charCodeAt(cursor.at) !== CLOSE_BRACKET) return null;
      cursor.at++;
      if (!Number.isFinite(price) || !(Number.isFinite(size) && size > 0)) return null;
      if (count < wanted) {
        flat[2 * count] = price;
        flat[2 * count + 1] = size;
      }
      if (++count > MAX_SIDE_LEVELS) return null;
      const next = line.charCodeAt(cursor.at);
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
 * are at most 15 and the exponent is small, else the slice converted by `Number` (exact too).
 */
function scanNumber(): boolean {
  const line = cursor.line;
  const start = cursor.at;
  let at = start;
  const negative = line.charCodeAt(at) === MINUS;
  if (negative) at++;
  let mantissa = 0;
  let digits = 0;
  let code = line.charCodeAt(at);
  if (code === ZERO) {
    at++;
    code = line.charCodeAt(at);
    if (code >= ZERO && code <= NINE) return false; // a leading zero
  } else if (code > ZERO && code <= NINE) {
    do {
      mantissa = mantissa * 10 + (code - ZERO);
      digits++;
      code = line.charCodeAt(++at);
    } while (code >= ZERO && code <= NINE);
  } else {
    return false;
  }
  let scale = 0;
  if (code === DOT) {
    code = line.charCodeAt(++at);
    if (!(code >= ZERO && code <= NINE)) return false;
    do {
      if (mantissa !== 0 || code !== ZERO) digits++;
      mantissa = mantissa * 10 + (code - ZERO);
      scale--;
      code = line.charCodeAt(++at);
    } while (code >= ZERO && code <= NINE);
  }
  let exact = true;
  if (code === LOWER_E || code === UPPER_E) {
    code = line.charCodeAt(++at);
    if (code === PLUS || code === MINUS) code = line.charCodeAt(++at);
    if (!(code >= ZERO && code <= NINE)) return false;
    do code = line.charCodeAt(++at);
    while (code >= ZERO && code <= NINE);
    exact = false;
  }
  cursor.at = at;
  if (exact && digits <= MAX_FAST_DIGITS && -scale < EXACT_POWERS.length) {
    const magnitude = scale === 0 ? mantissa : mantissa / EXACT_POWERS[-scale];
    cursor.number = negative ? -magnitude : magnitude;
  } else {
    cursor.number = Number(line.slice(start, at));
  }
  return true;
}
